#!/usr/bin/env bash
# SmolLM2-135M-Instruct on MetaMathQA: LoRA-SB r=32 (215k trained weights), LoRA r=8 (2.44M, 11×
# more) and full fine-tuning, 3 seeds each, every method at the lr its own range test chooses
# (optim.lr=auto over method.lr.search.causal_lm). The range test takes 16 steps of batch 4 a
# candidate, scored on 32 other rows, as outputs/measured/lr_auto/ ran it on this preset (a third
# of the training's time); its defaults (16 steps of batch 16, 256 scored rows) would use all 320
# rows and take three times as long. GSM8K on its first 200 test questions after training. The
# budget of experiment=smollm2_metamath (320 training rows of at most 256 tokens, one epoch) fits
# this machine's CPU. One process a job, resumable: rerun the script and finished jobs are
# skipped, a killed one resumes from its last checkpoint. The runs live in this folder's runs/,
# their small files tracked (.gitignore), so the jobs can spread over several sessions.
#   bash outputs/measured/compare_metamath/run.sh [runs folder]   (default: this folder's runs/)
# then: python -m lorasb.report outputs/measured/compare_metamath/runs --out outputs/measured/compare_metamath
set -uo pipefail
cd "$(dirname "$0")/../../.."
source outputs/measured/run_job.sh
runs=${1:-outputs/measured/compare_metamath/runs}
data=${LORASB_DATA_DIR:-../shared/data}
for seed in 0 1 2; do
  for job in lora_sb:32 lora:8 full:8; do
    method=${job%:*} rank=${job#*:}
    run_job "$runs/${method}_r$rank/seed$seed" experiment=smollm2_metamath method=$method rank=$rank seed=$seed \
      data.dir="$data" optim.lr=auto optim.auto_lr.batch_size=4 optim.auto_lr.score_rows=32 eval.limit=200
  done
done
