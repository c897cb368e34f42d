# Shared by tools/dist_*.sh and tools/slurm_*.sh (sourced, not run).
#
# mmattn_select_python SCRIPT: sets PYTHON to the interpreter that runs the tools. PYTHON from the
#   environment if set; otherwise the first of `python`, `python3` (the active environment) and the
#   project's .venv that can import torch, so the system Python without torch is never picked silently.
# mmattn_check_count SCRIPT NAME VALUE WHAT: exits with a message unless VALUE is a positive integer.

mmattn_select_python() {
    local script=$1 candidate tried=()
    local venv
    venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python"
    if [ -n "${PYTHON:-}" ]; then
        if ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
            echo "$script: error: PYTHON=$PYTHON cannot import torch; set PYTHON to the Python of the" \
                "environment with torch, mmcv and mmdet (e.g. PYTHON=$venv)." >&2
            exit 2
        fi
        return
    fi
    for candidate in python python3 "$venv"; do
        if command -v "$candidate" >/dev/null 2>&1; then
            tried+=("$(command -v "$candidate")")
            if "$candidate" -c 'import torch' >/dev/null 2>&1; then
                PYTHON=$(command -v "$candidate")
                return
            fi
        fi
    done
    echo "$script: error: no Python that can import torch was found (tried: ${tried[*]:-none})." \
        "Activate the environment with torch, mmcv and mmdet, or set PYTHON=/path/to/python." >&2
    exit 2
}

mmattn_check_count() {
    local script=$1 name=$2 value=$3 what=$4
    case "$value" in
        '' | *[!0-9]* | 0 | 0*)
            echo "$script: error: $name must be a positive integer ($what), got '$value'." >&2
            exit 2 ;;
    esac
}
