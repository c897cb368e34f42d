"""End-to-end tests of tools/train.py and tools/test.py on tiny toy data."""
import glob
import json
import os.path as osp
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import tools_helpers
from tools_helpers import TOOLS_DIR, run_tool

from mmattn.utils import checkpoint_safe_global_names, load_checkpoint_file

BBOX_KEYS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75',
             'coco/bbox_mAP_s', 'coco/bbox_mAP_m', 'coco/bbox_mAP_l')
SEGM_KEYS = tuple(key.replace('bbox', 'segm') for key in BBOX_KEYS)

# Fixtures shared by the tools tests.
toy_data = tools_helpers.toy_data
tiny_config = tools_helpers.tiny_config


def _load(path):
    """``torch.load(weights_only=True)`` with mmattn's allow-list."""
    return load_checkpoint_file(str(path))


@pytest.fixture(scope='module')
def trained(tiny_config, tmp_path_factory):
    """One epoch (two iterations) of training, validated at the end."""
    cwd = tmp_path_factory.mktemp('cwd')
    work_dir = cwd / 'work'
    result = run_tool(['train.py', tiny_config, '--work-dir',
                       str(work_dir)], cwd)
    return work_dir, result.stdout + result.stderr


def test_train_writes_checkpoint(trained):
    work_dir, log = trained
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.is_file()
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(ckpt)
    assert 'coco/bbox_mAP' in log and 'coco/segm_mAP' in log
    checkpoint = _load(ckpt)
    assert checkpoint['meta']['epoch'] == 1
    assert checkpoint['meta']['iter'] == 2
    assert any(k.startswith('backbone.layer1.0.')
               for k in checkpoint['state_dict'])


def test_checkpoint_globals_are_allow_listed(trained):
    """The allow-list covers every global the checkpoint needs, and is what
    makes it loadable (torch.load keeps weights_only=True); importing
    mmattn.models allow-lists nothing process-wide."""
    ckpt = str(trained[0] / 'epoch_1.pth')
    # A fresh interpreter, before anything is allow-listed.
    code = ('import json, sys, torch\n'
            'import mmattn.models, mmattn.utils\n'
            'ser = torch.serialization\n'
            'unsafe = ser.get_unsafe_globals_in_checkpoint(sys.argv[1])\n'
            'try:\n'
            '    torch.load(sys.argv[1], map_location="cpu")\n'
            '    error = None\n'
            'except Exception as e:\n'
            '    error = str(e)\n'
            'print(json.dumps(dict(unsafe=unsafe, error=error)))\n')
    out = subprocess.run([sys.executable, '-c', code, ckpt],
                         capture_output=True, text=True, check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    needed = set(report['unsafe'])
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in needed
    assert needed <= set(checkpoint_safe_global_names())
    assert report['error'] is not None
    assert 'weights only load failed' in report['error'].lower()
    assert _load(ckpt)['meta']['epoch'] == 1


def test_test_tool_metrics(trained, tiny_config, tmp_path):
    work_dir, _ = trained
    out_file = tmp_path / 'predictions.pkl'
    run_tool([
        'test.py', tiny_config,
        str(work_dir / 'epoch_1.pth'), '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(out_file)
    ], tmp_path)
    metric_files = glob.glob(str(tmp_path / 'test' / '*' / '*.json'))
    assert len(metric_files) == 1
    with open(metric_files[0]) as f:
        metrics = json.loads(f.readline())
    for key in BBOX_KEYS + SEGM_KEYS:
        assert key in metrics, key
        assert -1 <= metrics[key] <= 1
    with open(out_file, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 2  # two val images
    assert {'pred_instances', 'img_id'} <= set(predictions[0])


def test_resume_kill_and_resume_again(trained, tiny_config, tmp_path):
    """``--resume`` continues at the saved iteration under torch>=2.6; a
    killed training keeps its last checkpoint, which resumes again."""
    work_dir = tmp_path / 'work'
    shutil.copytree(trained[0], work_dir)
    # last_checkpoint holds an absolute path; point it at the copy.
    last = work_dir / 'last_checkpoint'
    last.write_text(str(work_dir / 'epoch_1.pth'))
    no_val = ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']

    # 1. Auto-resume from epoch 1 and train until killed.
    log_file = tmp_path / 'resume.log'
    cmd = [
        sys.executable,
        osp.join(TOOLS_DIR, 'train.py'), tiny_config, '--work-dir',
        str(work_dir), '--resume', '--cfg-options', 'train_cfg.max_epochs=100'
    ] + no_val
    with open(log_file, 'w') as log:
        proc = subprocess.Popen(
            cmd,
            cwd=str(tmp_path),
            env=tools_helpers.tool_env(),
            stdout=log,
            stderr=subprocess.STDOUT)
        deadline = time.time() + 240
        try:
            while 'epoch_3' not in last.read_text():
                assert proc.poll() is None, log_file.read_text()[-3000:]
                assert time.time() < deadline, 'no checkpoint in time'
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    log = log_file.read_text()
    assert 'resumed epoch: 1, iter: 2' in log
    assert re.search(r'Epoch\(train\) +\[2\]\[2/2\]', log)
    # Epoch 1 is not trained again.
    assert not re.search(r'Epoch\(train\) +\[1\]', log)

    # 2. The last checkpoint of the killed run is complete.
    ckpt = last.read_text().strip()
    checkpoint = _load(ckpt)
    epoch = checkpoint['meta']['epoch']
    assert epoch >= 3
    assert checkpoint['meta']['iter'] == 2 * epoch

    # 3. Resume from that checkpoint, given explicitly, into a new work dir.
    new_dir = tmp_path / 'resumed'
    result = run_tool([
        'train.py', tiny_config, '--work-dir',
        str(new_dir), '--resume', ckpt, '--cfg-options',
        f'train_cfg.max_epochs={epoch + 1}'
    ] + no_val, tmp_path)
    assert f'resumed epoch: {epoch}, iter: {2 * epoch}' in \
        result.stdout + result.stderr
    final = _load(new_dir / f'epoch_{epoch + 1}.pth')
    assert final['meta']['iter'] == 2 * (epoch + 1)


def test_resume_is_exact(trained, tiny_config, tmp_path):
    """Training resumed from epoch 1 ends bit-identical to a run that was
    never interrupted (same seed): the random states of torch, numpy,
    Python and the sampler are restored from the checkpoint, and validation
    after epoch 1 does not shift them."""
    ckpt = trained[0] / 'epoch_1.pth'
    assert 'random_state' in _load(ckpt)
    two_epochs = ['--cfg-options', 'train_cfg.max_epochs=2']
    run_tool(['train.py', tiny_config, '--work-dir',
              str(tmp_path / 'straight')] + two_epochs, tmp_path)
    result = run_tool(['train.py', tiny_config, '--work-dir',
                       str(tmp_path / 'resumed'), '--resume',
                       str(ckpt)] + two_epochs, tmp_path)
    assert 'Restored the random states of iteration 2' in \
        result.stdout + result.stderr
    straight = _load(tmp_path / 'straight' / 'epoch_2.pth')['state_dict']
    resumed = _load(tmp_path / 'resumed' / 'epoch_2.pth')['state_dict']
    assert straight.keys() == resumed.keys()
    max_diff = max(
        float((straight[k].double() - resumed[k].double()).abs().max())
        for k in straight if straight[k].numel())
    # The weights moved in epoch 2, so identical weights are not trivial.
    first = _load(ckpt)['state_dict']
    assert any(not torch.equal(first[k], straight[k]) for k in first)
    assert max_diff == 0, max_diff


def test_test_tool_refuses_other_configs_checkpoint(trained, tiny_config,
                                                    tmp_path):
    """An SE checkpoint evaluated with an ECA config leaves the attention
    weights random: refused, unless --allow-partial-checkpoint."""
    ckpt = str(trained[0] / 'epoch_1.pth')
    other = ['--cfg-options', 'model.backbone.type=ECAResNet']
    result = run_tool(['test.py', tiny_config, ckpt, '--work-dir',
                       str(tmp_path / 'refused')] + other, tmp_path,
                      check=False)
    assert result.returncode == 1
    assert f'Checkpoint {ckpt} does not cover the model' in result.stderr
    assert 'another architecture' in result.stderr
    assert 'Traceback' not in result.stderr
    run_tool(['test.py', tiny_config, ckpt, '--work-dir',
              str(tmp_path / 'partial'), '--allow-partial-checkpoint'] + other,
             tmp_path)


def test_load_from_and_pretrained_read_mmengine_checkpoint(
        trained, tiny_config, tmp_path):
    """A checkpoint of tools/train.py (message hub, numpy scalars, ...)
    loads as load_from and as the backbone's Pretrained weights
    (prefix='backbone.') under weights_only=True."""
    ckpt = str(trained[0] / 'epoch_1.pth')
    config = tmp_path / 'pretrained.py'
    config.write_text(
        f'_base_ = {tiny_config!r}\n'
        "model = dict(backbone=dict(init_cfg=dict(_delete_=True, "
        f"type='Pretrained', checkpoint={ckpt!r}, prefix='backbone.')))\n")
    result = run_tool([
        'train.py', str(config), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', f'load_from={ckpt}',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'
    ], tmp_path)
    log = result.stdout + result.stderr
    assert f'Load checkpoint from {ckpt}' in log
    assert f'load backbone. in model from: {ckpt}' in log
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()
