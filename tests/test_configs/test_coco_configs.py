"""Every COCO config: parses through mmdet's own bases, builds (ImageNet init switched off), and runs
a ``loss`` and a ``predict`` forward on two small images; protocol and init are the documented ones."""
import os.path as osp
import re
from glob import glob

import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmattn.models  # noqa: F401
from mmattn.analysis import backbone_types, metafile
from mmdet.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COCO_CONFIGS = sorted(p for p in glob(osp.join(ROOT, 'configs', '*', '*.py')) if '/quickstart/' not in p)
# config (relative to the repository) -> backbone type, from the metafiles
BACKBONE_OF = {m['Config']: m['Metadata']['Backbone'] for m in metafile.iter_models() if 'Config' in m}


def test_the_full_grid_is_there():
    """3 detectors x 2 depths for every backbone family, each listed in configs/README.md."""
    names = {osp.relpath(p, osp.join(ROOT, 'configs')) for p in COCO_CONFIGS}
    families = {osp.dirname(name) for name in names}
    assert len(names) == 3 * 2 * len(families)
    assert {BACKBONE_OF[f'configs/{name}'] for name in names} >= set(backbone_types())
    with open(osp.join(ROOT, 'configs', 'README.md')) as f:
        readme = f.read()
    for name in names:
        assert f'({name})' in readme, f'{name} missing from configs/README.md'


@pytest.mark.parametrize('path', COCO_CONFIGS, ids=[osp.basename(p)[:-3] for p in COCO_CONFIGS])
def test_config_protocol_and_init(path):
    cfg = Config.fromfile(path)
    name = osp.basename(path)
    detector = name.split('_')[0]
    backbone = cfg.model.backbone
    assert backbone.type == BACKBONE_OF[osp.relpath(path, ROOT)]
    assert backbone.depth == int(re.search(r'r(\d+)_fpn|s(\d+)_fpn', name).group(1) or
                                 re.search(r's(\d+)_fpn', name).group(1))
    assert cfg.model.type == {'faster-rcnn': 'FasterRCNN', 'retinanet': 'RetinaNet', 'mask-rcnn': 'MaskRCNN'}[detector]
    assert cfg.train_cfg.max_epochs == 12 and cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.optim_wrapper.optimizer.lr == (0.01 if detector == 'retinanet' else 0.02)
    assert cfg.train_dataloader.batch_size == 2
    assert backbone.init_cfg.type == 'Pretrained'
    ckpt = backbone.init_cfg.checkpoint
    if backbone.type == 'ResNet':
        assert ckpt == f'torchvision://resnet{backbone.depth}'
    else:
        assert ckpt.startswith('checkpoints/') and str(backbone.depth) in ckpt
        assert 'mmattn.models' in cfg.custom_imports.imports
    if detector == 'mask-rcnn':
        assert {'bbox', 'segm'} <= set(cfg.val_evaluator.metric)


@pytest.fixture(scope='module')
def mmdet_scope():
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.mark.parametrize('path', COCO_CONFIGS, ids=[osp.basename(p)[:-3] for p in COCO_CONFIGS])
def test_config_builds_and_runs_loss_and_predict(path, mmdet_scope):
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    # fewer proposals/RoIs than COCO's 1000/512: the heads, not the backbone, would dominate CPU time
    if 'rpn_proposal' in cfg.model.train_cfg:
        cfg.model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=64)
        cfg.model.train_cfg.rcnn.sampler.num = 32
        cfg.model.test_cfg.rpn.update(nms_pre=200, max_per_img=32)
        cfg.model.test_cfg.rcnn.max_per_img = 10
    else:
        cfg.model.test_cfg.update(nms_pre=200, max_per_img=10)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with_mask = cfg.model.type == 'MaskRCNN'
    packed = demo_mm_inputs(2, [[3, 96, 96], [3, 80, 112]], num_items=[2, 3], num_classes=80, with_mask=with_mask)
    data = model.data_preprocessor(packed, True)
    model.train()
    losses = model(**data, mode='loss')
    assert isinstance(losses, dict) and losses
    total = sum(v.sum() for k, v in losses.items() if 'loss' in k and isinstance(v, torch.Tensor))
    total += sum(sum(x.sum() for x in v) for k, v in losses.items() if 'loss' in k and isinstance(v, list))
    assert torch.isfinite(total)
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(packed, False), mode='predict')
    assert len(preds) == 2 and all(isinstance(p, DetDataSample) for p in preds)
    assert all('pred_instances' in p for p in preds)
    if with_mask:
        assert all('masks' in p.pred_instances for p in preds)
