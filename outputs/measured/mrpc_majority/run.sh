#!/usr/bin/env bash
# Why LoRA-SB sat at MRPC's majority class with 2,000 training rows: the same run with one
# setting changed at a time, one process each, resumable (finished runs are skipped).
#   bash outputs/measured/mrpc_majority/run.sh [runs folder]   (default outputs/runs/mrpc_majority)
set -uo pipefail
cd "$(dirname "$0")/../../.."
source outputs/measured/run_job.sh
runs=${1:-outputs/runs/mrpc_majority}
data=${LORASB_DATA_DIR:-../shared/data}
now=(model=minilm task=glue/mrpc method=lora_sb rank=24 seed=0 data.dir="$data" data.train_limit=2000)
# the ablations ran with LoRA-SB's candidates of the time, the default then
base=("${now[@]}" "optim.auto_lr.candidates=[3e-4,1e-3,3e-3,1e-2,3e-2]")
run_job "$runs/defaults" "${base[@]}"
run_job "$runs/head_bias_zero" "${base[@]}" init.head_bias=zero
run_job "$runs/head_bias_zero_lr_auto_without_3e-2" "${now[@]}" init.head_bias=zero "optim.auto_lr.candidates=[3e-4,1e-3,3e-3,1e-2]"
for lr in 1e-3 3e-3 1e-2 3e-2; do run_job "$runs/lr_$lr" "${base[@]}" optim.lr=$lr; done
for samples in 2 256; do run_job "$runs/init_samples_$samples" "${base[@]}" init.num_samples=$samples; done
run_job "$runs/epochs_10" "${base[@]}" trainer.max_epochs=10
# every training row: the seed-0 LoRA-SB run of ../compare_glue (the same settings)
run_job "$runs/new_candidates" "${now[@]}"  # the fix: today's default candidates
