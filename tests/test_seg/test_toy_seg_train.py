"""End to end: tools/train.py trains the quick-start segmentor on a tiny toy segmentation set and
tools/test.py evaluates it; the mIoU must beat predicting the background everywhere."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np

from mmattn.datasets import generate_toy_seg

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO_ROOT, 'configs', 'quickstart', 'fpn_se-r50_toy-seg.py')
ITERS = 80


def _run(tool, *args):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', tool), CONFIG, *args],
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_tiny_training_and_evaluation_reach_a_real_miou(tmp_path):
    root = str(tmp_path / 'toy_seg')
    # the same 16 scenes for training and evaluation: a few dozen iterations must fit them
    data = generate_toy_seg(root, num_train=16, num_val=1, size=64, seed=1, max_objects=2)
    work_dir = str(tmp_path / 'work')
    _run('train.py', '--work-dir', work_dir, '--cfg-options', f'train_dataloader.dataset.data_root={root}',
         'train_dataloader.batch_size=4', 'model.data_preprocessor.size=(64,64)',
         f'train_cfg.max_iters={ITERS}', f'param_scheduler.1.end={ITERS}', 'param_scheduler.0.end=10',
         'param_scheduler.1.begin=10', f'default_hooks.checkpoint.interval={ITERS}',
         'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None')
    checkpoint = osp.join(work_dir, f'iter_{ITERS}.pth')
    assert osp.isfile(checkpoint)
    _run('test.py', checkpoint, '--work-dir', work_dir + '/test', '--cfg-options',
         f'test_dataloader.dataset.data_root={root}', 'test_dataloader.dataset.data_prefix.img_path=img_dir/train',
         'test_dataloader.dataset.data_prefix.seg_map_path=ann_dir/train')
    (log, ) = glob.glob(osp.join(work_dir, 'test', '*', '*.json'))
    with open(log) as f:
        metrics = json.loads(f.readlines()[-1])
    pixels = np.array(data['pixels']['train'], dtype=float)
    all_background = 100 * pixels[0] / pixels.sum() / len(pixels)  # mIoU of predicting background only
    assert metrics['mIoU'] > all_background + 15, (metrics, all_background)
