#!/usr/bin/env bash
# Every job of this folder's comparison, one process each, resumable: rerun the script and the
# finished jobs are skipped, a killed one resumes from its last checkpoint.
#   bash outputs/measured/compare_glue/run.sh [runs folder]   (default outputs/runs/compare_glue)
#   (TASKS="mrpc cola", SEEDS="0", JOBS="lora:8" run only those tasks, seeds, methods:ranks)
# then: python -m lorasb.report <runs folder> --out outputs/measured/compare_glue
set -uo pipefail
cd "$(dirname "$0")/../../.."
source outputs/measured/run_job.sh
runs=${1:-outputs/runs/compare_glue}
data=${LORASB_DATA_DIR:-../shared/data}
for task in ${TASKS:-mrpc cola sst2}; do
  limit=null
  [ "$task" = sst2 ] && limit=10000  # 10,000 of its 67,349 rows: about 10 minutes a run here
  for seed in ${SEEDS:-0 1 2}; do
    for job in ${JOBS:-lora_sb:24 lora_xs:24 lora:8 full:8}; do
      method=${job%:*} rank=${job#*:}
      run_job "$runs/$task/${method}_r$rank/seed$seed" model=minilm task=glue/$task method=$method \
        rank=$rank seed=$seed data.dir="$data" data.train_limit=$limit
    done
  done
done
