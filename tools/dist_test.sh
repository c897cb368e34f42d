#!/usr/bin/env bash
# Distributed testing on one or more nodes with torch.distributed.run.
#
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
#   GPUS is the number of processes per node (CPU processes without CUDA;
#   tools/test.py then switches to the gloo backend).
# Environment: NNODES (1), NODE_RANK (0), PORT (29500),
#   MASTER_ADDR (127.0.0.1), PYTHON (default: the first of python, python3 and
#   the project's .venv/bin/python that can import torch).

CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tools/dist_env.sh
source "$TOOLS_DIR/dist_env.sh"

if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options]" >&2
    exit 2
fi
mmattn_check_count dist_test.sh GPUS "$GPUS" "the 3rd argument: processes per node"
mmattn_check_count dist_test.sh NNODES "$NNODES" "number of nodes"
mmattn_select_python dist_test.sh

PYTHONPATH="$TOOLS_DIR/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS_DIR/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
