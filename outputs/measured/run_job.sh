# Sourced by the run.sh of a measurement: run_job <run dir> <override>... trains one run in its
# own process, skips it when finished (its metrics.json is written when fit ends) and resumes it
# from its last checkpoint when a process was killed; its log is <run dir>.log.
run_job() {
  local dir=$1
  shift
  grep -qs '"steps"' "$dir/metrics.json" && return 0
  mkdir -p "$(dirname "$dir")"
  echo "$(date -u +%H:%M:%S) $dir"
  python -m lorasb.train "$@" logger=csv hydra.run.dir="$dir" > "$dir.log" 2>&1 \
    || echo "failed: $dir (its log: $dir.log)"
}
