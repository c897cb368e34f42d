"""Helpers and fixtures shared by the tools tests.

The fixtures make a tiny toy dataset and a tiny config: the SE Mask R-CNN
quick-start config shrunk to 64 x 64 images and two images per batch, so a
training epoch on the four training images takes two iterations. Test
modules import the fixtures they use from here.
"""
import functools
import importlib.util
import os
import os.path as osp
import socket
import subprocess
import sys
import types

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS_DIR = osp.join(REPO_ROOT, 'tools')
QUICKSTART_CFG = osp.join(REPO_ROOT, 'configs', 'quickstart',
                          'mask-rcnn_se-r50_fpn_toy-coco.py')

TINY_CONFIG = '''\
_base_ = {base!r}

data_root = {data_root!r}
image_scale = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='MultiStepLR', begin=0, end=10, by_epoch=True, milestones=[1])
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=3))
randomness = dict(seed=0)
'''


@pytest.fixture(scope='session')
def toy_data(tmp_path_factory):
    """A toy COCO dataset of 4 train and 2 val images of 64 x 64 pixels."""
    from mmattn.datasets import generate_toy_coco
    root = str(tmp_path_factory.mktemp('data') / 'toy_coco')
    generate_toy_coco(root, num_train=4, num_val=2, size=64, seed=0)
    return root + '/'


@pytest.fixture(scope='session')
def tiny_config(toy_data, tmp_path_factory):
    """Path of the tiny Mask R-CNN config on :func:`toy_data`."""
    path = tmp_path_factory.mktemp('configs') / 'tiny_mask-rcnn_se.py'
    path.write_text(
        TINY_CONFIG.format(base=QUICKSTART_CFG, data_root=toy_data))
    return str(path)


@functools.lru_cache(maxsize=None)
def load_tool(rel_path: str) -> types.ModuleType:
    """The script ``tools/<rel_path>`` as a module (not run as ``__main__``)."""
    path = osp.join(TOOLS_DIR, rel_path)
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def tool_env() -> dict:
    """Environment for tool subprocesses.

    One intra-op thread: the tiny models gain nothing from more, and
    multi-threaded processes slow down badly when other work shares the
    cores.
    """
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.setdefault('OMP_NUM_THREADS', '1')
    env.setdefault('MKL_NUM_THREADS', '1')
    return env


def run_tool(args, cwd, timeout=300, env=None, check=True):
    """Run ``python tools/<args[0]> args[1:]`` and return the result."""
    full_env = dict(tool_env(), **(env or {}))
    cmd = [sys.executable, osp.join(TOOLS_DIR, args[0])] + list(args[1:])
    result = subprocess.run(
        cmd,
        cwd=str(cwd),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f'{" ".join(cmd)} failed ({result.returncode}):\n'
            f'{result.stdout[-3000:]}\n{result.stderr[-3000:]}')
    return result
