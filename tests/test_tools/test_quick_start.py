"""tools/quick_start.py: result table and reuse of finished work."""
import json
import os.path as osp

import pytest
from tools_helpers import REPO_ROOT, load_tool

SE_CFG = osp.join(REPO_ROOT, 'configs', 'quickstart',
                  'mask-rcnn_se-r50_fpn_toy-coco.py')


@pytest.fixture(scope='module')
def quick_start():
    return load_tool('quick_start.py')


def test_finished_work_is_reused(quick_start, tmp_path, monkeypatch):
    exp = quick_start.Experiment(SE_CFG, str(tmp_path / 'data'),
                                 str(tmp_path / 'work'), force=False)
    assert exp.needs_training
    assert exp.checkpoint.endswith(
        f'epoch_{exp.cfg.train_cfg.max_epochs}.pth')
    # A finished run: final checkpoint and metrics of that checkpoint.
    with open(exp.checkpoint, 'wb') as f:
        f.write(b'not used')
    metrics = dict(box_ap=0.61, box_ap50=0.9, mask_ap=0.55)
    with open(exp.result_file, 'w') as f:
        json.dump(
            dict(
                train_time=200.0,
                metrics=metrics,
                checkpoint_mtime=osp.getmtime(exp.checkpoint)), f)

    def no_jobs(*args, **kwargs):
        raise AssertionError('nothing should run')

    monkeypatch.setattr(quick_start, 'run_jobs', no_jobs)
    exp = quick_start.Experiment(SE_CFG, str(tmp_path / 'data'),
                                 str(tmp_path / 'work'), force=False)
    assert not exp.needs_training and not exp.needs_testing()
    (result, ) = quick_start.run_experiments([exp], 1, verbose=False)
    assert result['metrics'] == metrics
    assert result['backbone'] == 'SEResNet'
    spread = {'Seeds': [0, 1, 2], 'Date': '2026-01-01', 'Command': 'cmd', 'box AP': [0.6, 0.7, 0.65]}
    monkeypatch.setattr(quick_start, 'seed_spread', lambda name: spread)
    table = quick_start.format_results([result])
    assert 'SEResNet' in table and '0.610' in table and '3m20s' in table
    assert '0.600-0.700' in table.splitlines()[-1]  # the seed range beside the result
    assert 'noise' in quick_start.spread_note([result])
    # --force trains again.
    exp = quick_start.Experiment(SE_CFG, str(tmp_path / 'data'),
                                 str(tmp_path / 'work'), force=True)
    assert exp.needs_training and exp.result == {}


def test_seed_gets_its_own_work_dir_and_reaches_train_py(quick_start, tmp_path):
    exp = quick_start.Experiment(SE_CFG, str(tmp_path / 'data'), str(tmp_path / 'work'), force=False, seed=2)
    assert exp.work_dir.endswith('mask-rcnn_se-r50_fpn_toy-coco_seed2')
    assert exp.train_job().cmd[-1] == 'randomness.seed=2'
    default = quick_start.Experiment(SE_CFG, str(tmp_path / 'data'), str(tmp_path / 'work'), force=False)
    assert not any('randomness.seed' in arg for arg in default.train_job().cmd)
