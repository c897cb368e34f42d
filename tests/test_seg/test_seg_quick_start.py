"""tools/quick_start.py's segmentation run: configs, test.py command, metrics and table."""
import importlib.util
import json
import os
import os.path as osp

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def quick_start():
    spec = importlib.util.spec_from_file_location('quick_start', osp.join(REPO_ROOT, 'tools', 'quick_start.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_segmentation_experiment_is_tested_and_reported_with_miou(quick_start, tmp_path):
    config = quick_start.DEFAULT_SEG_CONFIGS[1]
    exp = quick_start.Experiment(config, str(tmp_path / 'toy_seg'), str(tmp_path / 'work'), force=False)
    assert exp.is_seg and exp.tag == 'SAResNet'
    assert exp.checkpoint.endswith(f'iter_{exp.cfg.train_cfg.max_iters}.pth')
    cmd = exp.test_job().cmd
    assert f'test_dataloader.dataset.data_root={tmp_path}/toy_seg/' in cmd
    assert not any('ann_file' in arg for arg in cmd)  # a COCO option would break the mmseg config
    # what tools/test.py writes for an mmseg config
    run = osp.join(exp.test_dir, '20260101_000000')
    os.makedirs(run)
    with open(osp.join(run, '20260101_000000.json'), 'w') as f:
        f.write(json.dumps(dict(aAcc=95.1, mIoU=61.23, mAcc=70.4, time=0.2)) + '\n')
    metrics = quick_start._test_metrics(exp.test_dir, quick_start.SEG_METRIC_KEYS['miou'])
    assert metrics['mIoU'] == 61.23
    table = quick_start.format_seg_results([dict(
        name=exp.name, backbone=exp.tag, params=1.0e6, backbone_params=0.6e6, train_time=95.0,
        metrics=dict(miou=61.23, macc=70.4, aacc=95.1))])
    row = table.splitlines()[2].split()
    assert row[:2] == [exp.name, 'SAResNet'] and row[4:8] == ['61.23', '70.40', '95.10', '1m35s']
