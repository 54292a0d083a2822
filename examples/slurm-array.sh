#!/usr/bin/env bash
# A render-farm batch as a SLURM job array: 16 tasks, one GPU each, all writing into one shared output dir.
#
#   sbatch examples/slurm-array.sh prompts/examples.jsonl configs/wan2.1-14b-1.3b-lsl.yaml /shared/renders/run1
#
# fbgen reads SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT (and SLURM_ARRAY_TASK_MIN) itself, so each task takes
# its own stable shard of the prompts and appends to its own manifest-K-of-16.jsonl: safe on NFS. Items are
# assigned by a hash of their id, so resubmitting the same array (after pre-emption, a crash or a node failure)
# skips every finished video (verified by sha256) and redoes only what is missing. Exit codes are honest:
# 0 all done, 1 some items failed (recorded in the manifest; rerun with --retry-failed), 2 bad input,
# 3 missing/incompatible model, 130 pre-empted (SIGTERM). A follow-up job can use --dependency=afterok:<jobid>.
#
# Several GPUs per task instead: request them (--gres=gpu:4) and add `--devices all` (one worker per GPU).
#SBATCH --job-name=fbgen
#SBATCH --array=0-15
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=96G
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --output=logs/fbgen-%A_%a.log
set -euo pipefail

PROMPTS=${1:?prompts file (.txt or .jsonl)}
CONFIG=${2:?run config (YAML)}
OUT=${3:?shared output directory}

# Models come from a local path or the Hugging Face cache the nodes share; nothing should download mid-job.
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

exec fbgen batch "$PROMPTS" --config "$CONFIG" --out "$OUT" --schedule LSL
