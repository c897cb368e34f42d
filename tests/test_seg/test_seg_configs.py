"""Every segmentation config under configs/segmentation: it is its mmseg baseline with only the
backbone swapped, it builds, and the segmentor runs ``loss`` and ``predict``; its metafile lists it."""
import copy
import glob
import os.path as osp

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmattn.models  # noqa: F401

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_DIR = osp.join(REPO_ROOT, 'configs', 'segmentation')
CONFIGS = sorted(glob.glob(osp.join(SEG_DIR, '*', '*.py')))
FAMILIES = sorted(osp.basename(d) for d in glob.glob(osp.join(SEG_DIR, '*')) if osp.isdir(d))
METHODS = ('pspnet', 'deeplabv3plus', 'upernet')
BACKBONE = dict(resnet='ResNet', se_resnet='SEResNet', eca_resnet='ECAResNet', sa_resnet='SAResNet',
                cbam_resnet='CBAMResNet', sge_resnet='SGEResNet', epsanet='EPSANet')


def _name(path):
    return osp.splitext(osp.basename(path))[0]


def _family(path):
    return osp.basename(osp.dirname(path))


def _depth(path):
    return 101 if '101' in _name(path) else 50


def _mmseg_baseline(path):
    """The mmseg config this one must equal but for the backbone: its R-50b/R-101b-D8 Cityscapes
    config, or for ADE20K mmseg's UPerNet (whose V1c backbone is replaced by the V1b ResNet)."""
    method, depth = _name(path).split('_')[0], _depth(path)
    if method == 'upernet':
        rel = f'upernet/upernet_r{depth}_4xb4-160k_ade20k-512x512.py'
    else:
        rel = f'{method}/{method}_r{depth}b-d8_4xb2-80k_cityscapes-512x1024.py'
    base = Config.fromstring(f"_base_ = 'mmseg::{rel}'\n", '.py')
    return base


def test_every_family_has_every_method_at_both_depths():
    assert FAMILIES == sorted(BACKBONE)
    for family in FAMILIES:
        names = {_name(p) for p in CONFIGS if _family(p) == family}
        assert len(names) == 6, (family, names)
        assert {n.split('_')[0] for n in names} == set(METHODS)


@pytest.mark.parametrize('path', CONFIGS, ids=_name)
def test_config_is_its_mmseg_baseline_with_the_backbone_swapped(path):
    cfg, base = Config.fromfile(path), _mmseg_baseline(path)
    assert cfg.default_scope == 'mmseg'
    model, ref = copy.deepcopy(cfg.model.to_dict()), base.model.to_dict()
    backbone, ref_backbone = model.pop('backbone'), ref.pop('backbone')
    model.pop('pretrained')
    ref.pop('pretrained')
    assert model == ref  # heads, data preprocessor, train/test cfg untouched
    assert backbone['type'] == BACKBONE[_family(path)]
    assert backbone['depth'] == _depth(path)
    for key in ('strides', 'dilations', 'contract_dilation', 'norm_cfg', 'norm_eval', 'style',
                'out_indices', 'num_stages'):
        assert backbone[key] == ref_backbone[key], key
    if backbone['type'] == 'ResNet':  # the V1b baseline: mmseg's torchvision-initialised ResNet
        assert cfg.model.pretrained == f'torchvision://resnet{_depth(path)}'
    else:  # the official ImageNet checkpoint, through the backbone (mmseg's `pretrained` would clash)
        assert cfg.model.pretrained is None
        assert backbone['init_cfg']['type'] == 'Pretrained'
        assert backbone['init_cfg']['checkpoint'].startswith('checkpoints/')
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler', 'test_evaluator'):
        assert cfg[key] == base[key], key


@pytest.mark.parametrize('path', CONFIGS, ids=_name)
def test_config_builds_and_runs_loss_and_predict(path):
    """The backbone exactly as configured (the ImageNet init is not loaded); the heads narrowed to 16
    channels so that 42 segmentors build and run in seconds."""
    cfg = Config.fromfile(path)
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.channels = 16
    if 'c1_channels' in cfg.model.decode_head:
        cfg.model.decode_head.c1_channels = 8
    cfg.model.auxiliary_head.channels = 16
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == cfg.model.backbone.type
    num_classes = cfg.model.decode_head.num_classes
    torch.manual_seed(0)
    # 64 x 64: UPerNet's stride-32 map is 2 x 2 (SGE needs 2 positions for its std)
    x = torch.randn(2, 3, 64, 64)
    samples = [SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, num_classes, (1, 64, 64))),
                             metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64))) for _ in range(2)]
    model.train()
    losses = model.loss(x, samples)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
    assert all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k)
    model.eval()
    with torch.no_grad():
        preds = model.predict(x, samples)
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 64)
    assert preds[0].seg_logits.data.shape == (num_classes, 64, 64)


def _metafile(family):
    with open(osp.join(SEG_DIR, family, 'metafile.yml')) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize('family', sorted(BACKBONE))
def test_metafile_lists_every_config_with_its_baseline(family):
    meta = _metafile(family)
    models = {m['Name']: m for m in meta['Models']}
    configs = {_name(p): p for p in CONFIGS if _family(p) == family}
    assert set(models) == set(configs)
    published = {m['Name']: m for m in _metafile('resnet')['Models']}
    for name, model in models.items():
        assert osp.join(REPO_ROOT, model['Config']) == configs[name]
        assert model['Results'] == []  # ours: filled by collect_results.py
        assert model['Metadata']['Backbone'] == BACKBONE[family]
        assert model['Metadata']['Depth'] == _depth(configs[name])
        if family == 'resnet':
            (entry, ) = model['Published']
            assert entry['Metrics']['mIoU'] > 40
        else:  # the plain ResNet config of the same method and depth, with mmseg's number
            baseline = published[model['Metadata']['Baseline']]
            assert baseline['Metadata']['Segmentor'] == model['Metadata']['Segmentor']
            assert baseline['Metadata']['Depth'] == model['Metadata']['Depth']
