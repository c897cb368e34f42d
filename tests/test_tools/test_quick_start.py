"""tools/quick_start.py: result table and reuse of finished work."""
import importlib.util
import json
import os.path as osp

import pytest
from tools_helpers import REPO_ROOT, TOOLS_DIR

SE_CFG = osp.join(REPO_ROOT, 'configs', 'quickstart',
                  'mask-rcnn_se-r50_fpn_toy-coco.py')


@pytest.fixture(scope='module')
def quick_start():
    path = osp.join(TOOLS_DIR, 'quick_start.py')
    spec = importlib.util.spec_from_file_location('quick_start', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    table = quick_start.format_results([result])
    assert 'SEResNet' in table and '0.610' in table and '3m20s' in table
    # --force trains again.
    exp = quick_start.Experiment(SE_CFG, str(tmp_path / 'data'),
                                 str(tmp_path / 'work'), force=True)
    assert exp.needs_training and exp.result == {}
