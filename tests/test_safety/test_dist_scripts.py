"""tools/dist_*.sh and slurm_*.sh: bad process counts and a Python without torch are named."""
import os
import os.path as osp
import subprocess
import sys

import pytest

TOOLS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools')


def _bash(args, env=None, **kwargs):
    return subprocess.run(['bash'] + args, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})), **kwargs)


@pytest.mark.parametrize('gpus', ['0', '-1', 'abc', ''])
@pytest.mark.parametrize('script, args',
                         [('dist_train.sh', ['cfg.py']), ('dist_test.sh', ['cfg.py', 'c.pth'])])
def test_bad_process_count(script, args, gpus):
    result = _bash([osp.join(TOOLS, script)] + args + [gpus], env=dict(PYTHON=sys.executable))
    assert result.returncode == 2
    assert 'GPUS must be a positive integer' in result.stderr and f"got '{gpus}'" in result.stderr


def test_slurm_bad_gpus_env():
    result = _bash([osp.join(TOOLS, 'slurm_train.sh'), 'part', 'job', 'cfg.py', 'work'],
                   env=dict(GPUS='abc', PYTHON=sys.executable))
    assert result.returncode == 2 and "GPUS must be a positive integer" in result.stderr


def test_python_without_torch_is_refused():
    result = _bash([osp.join(TOOLS, 'dist_train.sh'), 'cfg.py', '1'], env=dict(PYTHON='/bin/false'))
    assert result.returncode == 2
    assert 'PYTHON=/bin/false cannot import torch' in result.stderr


def test_first_python_with_torch_is_chosen(tmp_path):
    """A `python` without torch first on PATH (the system one) is skipped for one that has it."""
    no_torch, with_torch = tmp_path / 'a', tmp_path / 'b'
    no_torch.mkdir()
    with_torch.mkdir()
    (no_torch / 'python').write_text('#!/bin/sh\nexit 1\n')
    (with_torch / 'python3').write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    for f in (no_torch / 'python', with_torch / 'python3'):
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHON'}
    env['PATH'] = f'{no_torch}:{with_torch}:/usr/bin:/bin'
    result = subprocess.run(
        ['bash', '-c', f'source {osp.join(TOOLS, "dist_env.sh")}; mmattn_select_python t; echo "$PYTHON"'],
        capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.strip() == str(with_torch / 'python3'), result.stderr
