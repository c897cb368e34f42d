"""tools/dist_train.sh and tools/dist_test.sh with two CPU processes (gloo backend)."""
import os
import os.path as osp
import re
import subprocess
import sys

import torch
import tools_helpers
from tools_helpers import TOOLS_DIR, free_port

from mmattn.utils import load_checkpoint_file

# Fixtures shared by the tools tests.
toy_data = tools_helpers.toy_data
tiny_config = tools_helpers.tiny_config


def _run_dist_tool(script, args, cwd):
    """Run ``tools/<script> args`` under torchrun with two CPU processes; return the log."""
    env = dict(
        os.environ,
        PORT=str(free_port()),
        PYTHON=sys.executable,
        PYTHONUNBUFFERED='1')
    if torch.cuda.is_available():
        env['CUDA_VISIBLE_DEVICES'] = ''  # exercise the CPU (gloo) path
    result = subprocess.run(
        ['bash', osp.join(TOOLS_DIR, script)] + args,
        cwd=str(cwd),
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    log = result.stdout + result.stderr
    # torch.distributed.run exits with 0 only if every rank exits with 0; a
    # rank that aborts at exit (a process group left to interpreter shutdown)
    # fails it.
    assert result.returncode == 0, log[-5000:]
    assert 'gloo backend instead of nccl' in log
    assert '(rank 0 of 2)' in log
    # The tool freed the process group before exit (close_distributed warns otherwise).
    assert 'still referenced' not in log
    return log


def test_dist_train_and_test_two_cpu_processes(tiny_config, tmp_path):
    work_dir = tmp_path / 'work'
    # Four training images, two per batch, two processes: one iteration per
    # epoch on each rank. The validation at the end gathers over gloo.
    log = _run_dist_tool('dist_train.sh', [
        tiny_config, '2', '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=2'
    ], tmp_path)
    assert re.search(r'Epoch\(train\) +\[2\]\[1/1\]', log)
    assert 'coco/bbox_mAP' in log
    checkpoint = load_checkpoint_file(str(work_dir / 'epoch_2.pth'))
    assert checkpoint['meta']['iter'] == 2

    # The two validation images, one per rank, evaluated together on rank 0.
    log = _run_dist_tool('dist_test.sh', [
        tiny_config, str(work_dir / 'epoch_2.pth'), '2', '--work-dir',
        str(tmp_path / 'test_work')
    ], tmp_path)
    assert re.search(r'Epoch\(test\) +\[1/1\].*coco/bbox_mAP: ', log)
    assert 'coco/segm_mAP' in log
