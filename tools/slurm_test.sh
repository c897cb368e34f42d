#!/usr/bin/env bash
# Testing on a Slurm cluster.
#
# Usage: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [options]
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS,
#   PYTHON (default: the first of python, python3 and the project's
#   .venv/bin/python that can import torch).

set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PY_ARGS=("${@:5}")
TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tools/dist_env.sh
source "$TOOLS_DIR/dist_env.sh"
mmattn_check_count slurm_test.sh GPUS "$GPUS" "total number of processes"
mmattn_check_count slurm_test.sh GPUS_PER_NODE "$GPUS_PER_NODE" "processes per node"
mmattn_check_count slurm_test.sh CPUS_PER_TASK "$CPUS_PER_TASK" "CPU cores per process"
mmattn_select_python slurm_test.sh

# SRUN_ARGS is split on purpose: it may hold several srun options.
# shellcheck disable=SC2086
PYTHONPATH="$TOOLS_DIR/..":$PYTHONPATH \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$TOOLS_DIR/test.py" "${CONFIG}" "${CHECKPOINT}" \
    --launcher="slurm" "${PY_ARGS[@]}"
