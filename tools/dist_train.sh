#!/usr/bin/env bash
# Distributed training on one or more nodes with torch.distributed.run.
#
# Usage: tools/dist_train.sh CONFIG GPUS [train.py options]
#   GPUS is the number of processes per node (CPU processes without CUDA;
#   tools/train.py then switches to the gloo backend).
# Environment: NNODES (1), NODE_RANK (0), PORT (29500),
#   MASTER_ADDR (127.0.0.1), PYTHON (default: the first of python, python3 and
#   the project's .venv/bin/python that can import torch).

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tools/dist_env.sh
source "$TOOLS_DIR/dist_env.sh"

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py options]" >&2
    exit 2
fi
mmattn_check_count dist_train.sh GPUS "$GPUS" "the 2nd argument: processes per node"
mmattn_check_count dist_train.sh NNODES "$NNODES" "number of nodes"
mmattn_select_python dist_train.sh

PYTHONPATH="$TOOLS_DIR/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS_DIR/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
