"""The attention backbones inside MMSegmentation: registration, dilated output stride 8 equal to
mmseg's own ResNet, parameter names and shapes untouched by dilation, frozen stages and norm_eval in
an mmseg segmentor."""
import subprocess
import sys

import pytest
import torch
from mmseg.models.backbones import ResNet as MMSegResNet
from mmseg.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

import mmattn.models  # noqa: F401
from mmattn.models import (AttentionResNet, CBAMResNet, ECAResNet, EPSANet, SAResNet, SEResNet,
                           SGEResNet)

FAMILIES = [SEResNet, ECAResNet, SAResNet, CBAMResNet, SGEResNet, EPSANet]
DILATED = dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True)


@pytest.mark.parametrize('name', ['SAResNet', 'mmdet.SAResNet', 'EPSANet', 'mmdet.ECAResNet'])
def test_backbones_build_in_mmseg_scope_by_plain_and_prefixed_name(mmseg_scope, name):
    backbone = MODELS.build(dict(type=name, depth=50, **DILATED))
    assert type(backbone).__name__ == name.split('.')[-1]
    assert backbone.contract_dilation


def test_every_mmattn_backbone_is_registered_in_mmseg():
    from mmdet.registry import MODELS as MMDET_MODELS
    ours = [n for n, c in MMDET_MODELS.module_dict.items() if c.__module__.startswith('mmattn.models.backbones')]
    assert len(ours) >= 7
    for name in ours:
        assert MODELS.module_dict.get(name) is MMDET_MODELS.module_dict[name]


def test_without_mmseg_mmattn_models_imports_as_before():
    code = ("import sys; sys.modules['mmseg'] = None\n"
            "import mmattn.models\n"
            "from mmdet.registry import MODELS\n"
            "assert MODELS.get('SAResNet') is not None\n"
            "assert 'mmattn.models.seg' not in sys.modules\n")
    subprocess.run([sys.executable, '-c', code], check=True, capture_output=True)


def test_dilated_network_equals_mmseg_resnet_d8():
    """AttentionResNet without attention is the torchvision-style ResNet: with mmseg's D8 settings
    and the same weights it must compute exactly what mmseg's ResNet (V1b) computes, at stride 8."""
    torch.manual_seed(0)
    ours = AttentionResNet(50, **DILATED)
    ref = MMSegResNet(depth=50, **DILATED)
    ref.load_state_dict(ours.state_dict(), strict=True)
    ours.eval()  # (mmdet's and mmseg's ResNet.train return None: no chaining)
    ref.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs, refs = ours(x), ref(x)
    assert [o.shape[-1] for o in outs] == [16, 8, 8, 8]
    for o, r in zip(outs, refs):
        torch.testing.assert_close(o, r)


@pytest.mark.parametrize('cls', FAMILIES, ids=lambda c: c.__name__)
def test_dilation_changes_no_parameter_name_or_shape(cls):
    plain = {k: v.shape for k, v in cls(50).state_dict().items()}
    dilated_model = cls(50, **DILATED)
    dilated = {k: v.shape for k, v in dilated_model.state_dict().items()}
    assert dilated == plain

    def spatial_convs(block):  # the 3 x 3 conv (EPSANet: PSA's k x k branches), not SE's 1 x 1
        return [m for m in block.conv2.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]

    assert all(c.dilation == (2, 2) for c in spatial_convs(dilated_model.layer4[0]))  # contracted: 4 // 2
    assert all(c.dilation == (4, 4) for c in spatial_convs(dilated_model.layer4[1]))
    assert all(c.padding == (c.kernel_size[0] // 2 * 4, ) * 2 for c in spatial_convs(dilated_model.layer4[1]))
    dilated_model.eval()
    with torch.no_grad():
        outs = dilated_model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 16), (8, 8), (8, 8), (8, 8)]


def _segmentor(backbone):
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.] * 3, std=[1.] * 3),
        backbone=backbone,
        decode_head=dict(type='FCNHead', in_channels=2048, in_index=3, channels=8, num_convs=1,
                         num_classes=3, norm_cfg=dict(type='BN', requires_grad=True)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))
    return MODELS.build(cfg)


@pytest.mark.parametrize('norm_eval', [False, True])
def test_frozen_stages_and_norm_eval_in_an_mmseg_segmentor(mmseg_scope, norm_eval):
    model = _segmentor(dict(type='SAResNet', depth=50, frozen_stages=2, norm_eval=norm_eval, **DILATED))
    model.train()
    backbone = model.backbone
    frozen = [backbone.conv1, backbone.norm1, backbone.layer1, backbone.layer2]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules() if isinstance(m, _BatchNorm))
    for module in (backbone.layer3, backbone.layer4):
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training != norm_eval for m in module.modules() if isinstance(m, _BatchNorm))
    assert model.decode_head.training
    # one SGD step moves layer3 and leaves the frozen stages (weights and BN statistics) as they were
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = [SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 3, (1, 64, 64))),
                             metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64))) for _ in range(2)]
    loss = sum(v for k, v in model.loss(torch.randn(2, 3, 64, 64), samples).items() if 'loss' in k)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    after = backbone.state_dict()
    for key in before:
        changed = not torch.equal(before[key], after[key])
        if key.startswith(('conv1', 'bn1', 'layer1', 'layer2')):
            assert not changed, key
        elif key.startswith('layer3') and key.endswith(('conv1.weight', 'running_mean')):
            assert changed != (norm_eval and 'running' in key), key
