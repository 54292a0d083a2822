#!/usr/bin/env bash
# A render-farm batch as a SLURM job array: every task drains the same queue, all writing into one shared output dir.
#
#   examples/slurm-array.sh PROMPTS CONFIG OUT_DIR [fbgen batch flags ...]
#   examples/slurm-array.sh prompts/examples.jsonl configs/wan2.1-14b-1.3b-lsl.yaml /shared/renders/run1
#   examples/slurm-array.sh prompts.jsonl CONFIG /shared/out --retry-failed --set steps=40
#   SBATCH_ARRAY=0-31 examples/slurm-array.sh ...          # more tasks (sbatch reads SBATCH_* variables)
#
# Run it from a login node: it creates logs/ and submits itself (sbatch opens the log before the script runs, so
# the directory must exist first). Inside the job it execs `fbgen batch`.
#
# No shards: the tasks claim items one at a time under a lease, so any array spec (0-15, 1,3, 0-30:2), requeues,
# extra tasks submitted later, or `srun -n N` inside a task all render every item exactly once. A task that dies
# leaves its item to the others when its lease lapses (--lease, default 120 s). The schedule is the config's.
# Exit codes are honest: 0 only when every item is done; 1 some failed (rerun with --retry-failed) or were
# left; 2 bad input; 3 missing/incompatible model; 130 pre-empted (SIGTERM) — requeued, it resumes where it was.
# Gate publishing on the whole batch: `fbgen status OUT_DIR` (exit 0 only if all done), e.g. in a job with
# --dependency=afterany:<array job id>.
#
# GPU nodes: add `--gres=gpu:1` (and raise --cpus-per-task/--mem to what the models need: Wan 14B + 1.3B in bf16
# wants ~64 GB of host RAM to load); several GPUs per task: `--gres=gpu:4` and pass `--devices all`.
#SBATCH --job-name=fbgen
#SBATCH --array=0-3
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=24:00:00
#SBATCH --signal=B:TERM@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=logs/fbgen-%A_%a.log
set -euo pipefail

if [ -z "${SLURM_JOB_ID:-}" ]; then  # on the login node: make the log dir, then submit this very script
  mkdir -p logs
  exec sbatch "$0" "$@"
fi

PROMPTS=${1:?prompts file (.txt or .jsonl)}
CONFIG=${2:?run config (YAML)}
OUT=${3:?shared output directory}
shift 3

# Models come from a local path or the Hugging Face cache the nodes share; nothing should download mid-job.
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

echo "$(date '+%F %T') task ${SLURM_ARRAY_TASK_ID:-0} of job ${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID} on $(hostname)" \
     "(restart ${SLURM_RESTART_COUNT:-0})"
# exec: fbgen itself receives the B:TERM early warning, releases its item and exits 130
exec fbgen batch "$PROMPTS" --config "$CONFIG" --out "$OUT" "$@"
