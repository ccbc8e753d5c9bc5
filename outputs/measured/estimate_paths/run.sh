#!/usr/bin/env bash
# The first-step estimate from layer inputs and output gradients (this checkout) against the one
# from weight .grad hooks (the commit before 6ca938a), on MiniLM and SmolLM2, one torch thread:
#   bash outputs/measured/estimate_paths/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
old=$(mktemp -d)/old_estimate
git worktree add --detach "$old" 6ca938a^ > /dev/null
trap 'git worktree remove --force "$old"' EXIT
export OMP_NUM_THREADS=1
python outputs/measured/estimate_paths/compare.py --old "$old" --new . --runs 5 --model minilm --batches 4 --batch 8 --seq-len 128
python outputs/measured/estimate_paths/compare.py --old "$old" --new . --runs 5 --model smollm2 --batches 2 --batch 4 --seq-len 64
