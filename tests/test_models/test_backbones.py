"""Attention backbones in mmdet's backbone-test style, plus fidelity: exact official parameter counts
and official-layout ImageNet checkpoints that load with no missing/unexpected key and reproduce the
official model's stage outputs (tests/reference.py)."""
import pytest
import torch
from mmdet.models.backbones import ResNet
from mmdet.models.backbones.resnet import Bottleneck
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

from mmattn.layers import CBAM, ECAModule, PSAModule, SEModule, ShuffleAttention, SpatialGroupEnhance
from mmattn.models import (AttentionResNet, CBAMResNet, ECAResNet, EPSANet, SAResNet, SEResNet,
                           SGEResNet)
from mmattn.models.backbones import AttnBasicBlock, EPSABottleneck
from reference import official_state_dict, reference_forward, save_official_checkpoint

HEAD = 2048 * 1000 + 1000  # the ImageNet classifier the official counts include


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.fixture
def mmdet_scope():
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


# ----------------------------------------------------------------------------- exact official counts
COUNTS = [
    ('ResNet-50', lambda: ResNet(50), 25_557_032),
    ('ResNet-101', lambda: ResNet(101), 44_549_160),
    ('SE-50', lambda: SEResNet(50), 28_088_024),
    ('SE-101', lambda: SEResNet(101), 49_326_872),
    ('SE-50 moskomule', lambda: SEResNet(50, bias=False), 28_071_976),
    ('SE-101 moskomule', lambda: SEResNet(101, bias=False), 49_292_328),
    ('ECA-50 k3557', lambda: ECAResNet(50), 25_557_112),
    ('ECA-101 k3357', lambda: ECAResNet(101), 44_549_317),
    ('ECA-50 k3333', lambda: ECAResNet(50, kernel_size=3), 25_557_080),
    ('SA-50', lambda: SAResNet(50), 25_557_740),
    ('SA-101', lambda: SAResNet(101), 44_550_684),
    ('EPSANet-50 small', lambda: EPSANet(50), 22_561_715),
    ('EPSANet-101 small', lambda: EPSANet(101), 38_900_279),
    ('CBAM-50', lambda: CBAMResNet(50), 28_089_624),
    ('CBAM-101', lambda: CBAMResNet(101), 49_330_172),
    # SGE: 64 groups x (weight, bias) = 128 per block; 16 blocks in R-50, 33 in R-101
    ('SGE-50', lambda: SGEResNet(50), 25_557_032 + 16 * 128),
    ('SGE-101', lambda: SGEResNet(101), 44_549_160 + 33 * 128),
]


@pytest.mark.parametrize('name,build,expected', COUNTS, ids=[c[0] for c in COUNTS])
def test_parameter_count_equals_official(name, build, expected):
    assert n_params(build()) + HEAD == expected


def test_eca_adaptive_kernels_are_the_paper_rule():
    m = ECAResNet(50, kernel_size='adaptive')
    assert [m.layer1[0].eca.kernel_size, m.layer2[0].eca.kernel_size, m.layer3[0].eca.kernel_size,
            m.layer4[0].eca.kernel_size] == [5, 5, 5, 7]
    assert n_params(m) + HEAD == 25_557_032 + 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7


# ----------------------------------------------------------------------------- official checkpoints
CKPTS = [
    ('resnet', 50, lambda **kw: AttentionResNet(50, **kw), {}),
    ('se', 50, lambda **kw: SEResNet(50, bias=False, **kw), {}),
    ('se', 18, lambda **kw: SEResNet(18, bias=False, **kw), {}),
    ('se', 50, lambda **kw: SEResNet(50, **kw), dict(se_bias=True)),
    ('eca', 50, lambda **kw: ECAResNet(50, **kw), {}),
    ('eca', 18, lambda **kw: ECAResNet(18, **kw), {}),
    ('sa', 50, lambda **kw: SAResNet(50, **kw), {}),
    ('cbam', 50, lambda **kw: CBAMResNet(50, **kw), {}),
    ('sge', 50, lambda **kw: SGEResNet(50, **kw), {}),
    ('epsa', 50, lambda **kw: EPSANet(50, **kw), {}),
]


@pytest.mark.parametrize('arch,depth,build,opts', CKPTS, ids=[f'{c[0]}{c[1]}' for c in CKPTS])
def test_official_checkpoint_loads_and_reproduces_official_features(tmp_path, arch, depth, build, opts):
    path = str(tmp_path / f'{arch}{depth}_model_best.pth.tar')
    sd = save_official_checkpoint(path, arch, depth, **opts)

    # exactly the official keys, minus the classifier: no missing and no unexpected backbone key
    model = build()
    assert set(model.state_dict()) == set(sd) - {'fc.weight', 'fc.bias'}

    # loads directly through init_cfg (mmengine strips 'module.'), no converter needed
    model = build(init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), f'{k} was not loaded'

    # float64 on both sides, so the comparison measures the architecture, not float32 rounding noise
    # amplified through 16 random-weight blocks (per-module float32 checks are in test_layers)
    model.eval()
    model.double()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        outs = model(x)
        expected = reference_forward({k: v.double() if v.is_floating_point() else v for k, v in sd.items()},
                                     arch, depth, x)
    assert len(outs) == 4
    for i, (a, b) in enumerate(zip(outs, expected)):
        assert a.shape == b.shape
        err = (a - b).abs().max().item() / max(b.abs().max().item(), 1.0)
        assert err < 1e-9, f'stage {i + 1}: relative error {err:.2e}'


def test_mmdet_builds_from_config_names():
    for cfg in (dict(type='SEResNet', depth=50), dict(type='SAResNet', depth=50), dict(type='EPSANet', depth=50),
                dict(type='ECAResNet', depth=50), dict(type='CBAMResNet', depth=50),
                dict(type='SGEResNet', depth=50), dict(type='AttentionResNet', depth=18, attention=dict(type='SE'))):
        assert isinstance(MODELS.build(cfg), ResNet)


# ----------------------------------------------------------------------------- mmdet backbone API
TINY = [
    ('se', lambda **kw: SEResNet(50, base_channels=16, **kw), SEModule, 'se'),
    ('eca', lambda **kw: ECAResNet(50, base_channels=16, **kw), ECAModule, 'eca'),
    ('sa', lambda **kw: SAResNet(50, base_channels=16, groups=8, **kw), ShuffleAttention, 'sa'),
    ('cbam', lambda **kw: CBAMResNet(50, base_channels=16, **kw), CBAM, 'cbam'),
    ('sge', lambda **kw: SGEResNet(50, base_channels=16, groups=8, **kw), SpatialGroupEnhance, 'sge'),
    ('epsa', lambda **kw: EPSANet(50, base_channels=16, conv_groups=(1, 2, 4, 4), psa_reduction=2, **kw),
     PSAModule, 'conv2'),
    ('se18', lambda **kw: SEResNet(18, base_channels=16, reduction=4, **kw), SEModule, 'se'),
    ('cbam34', lambda **kw: CBAMResNet(34, base_channels=16, reduction=4, **kw), CBAM, 'cbam'),
]


@pytest.mark.parametrize('name,build,layer_cls,attr', TINY, ids=[t[0] for t in TINY])
def test_attention_in_every_block_with_right_channels(name, build, layer_cls, attr):
    model = build()
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
    expansion = blocks[0].expansion
    for b in blocks:
        layer = getattr(b, attr)
        assert isinstance(layer, layer_cls)
        expected = (b.planes if isinstance(b, Bottleneck) else b.conv2.out_channels)
        expected = expected * expansion if attr != 'conv2' else expected
        assert layer.in_channels == expected
    x = torch.randn(2, 3, 64, 64)
    outs = model(x)
    c = 16 * expansion
    assert [tuple(o.shape) for o in outs] == [(2, c, 16, 16), (2, 2 * c, 8, 8), (2, 4 * c, 4, 4), (2, 8 * c, 2, 2)]


@pytest.mark.parametrize('name,build,layer_cls,attr', TINY, ids=[t[0] for t in TINY])
def test_out_indices_frozen_stages_norm_eval(name, build, layer_cls, attr):
    model = build(out_indices=(0, 2), frozen_stages=1, norm_eval=True)
    model.train()
    assert len(model(torch.randn(1, 3, 64, 64))) == 2
    assert model.norm1.training is False
    for p in list(model.conv1.parameters()) + list(model.norm1.parameters()) + list(model.layer1.parameters()):
        assert p.requires_grad is False
    assert all(p.requires_grad for p in model.layer2.parameters())
    # norm_eval: every BN in the backbone (attention BNs included) stays in eval mode
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    model = build(norm_eval=False)
    model.train()
    assert all(m.training for m in model.modules() if isinstance(m, _BatchNorm))


@pytest.mark.parametrize('norm_eval', [False, True], ids=['bn_train', 'bn_eval'])
@pytest.mark.parametrize('name,build,layer_cls,attr', TINY, ids=[t[0] for t in TINY])
def test_with_cp_same_output_and_gradients(name, build, layer_cls, attr, norm_eval):
    """with_cp keeps nothing; without it the gate input is rebuilt from the BN input in the backward
    (batch statistics in train mode, running ones under norm_eval): both give the same gradients."""
    torch.manual_seed(0)
    ref = build(norm_eval=norm_eval)
    cp = build(norm_eval=norm_eval, with_cp=True)
    for m in ref.modules():  # non-trivial running statistics for the norm_eval case
        if isinstance(m, _BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    cp.load_state_dict(ref.state_dict())
    ref.train()
    cp.train()
    assert all(b.with_cp for layer in (cp.layer1, cp.layer4) for b in layer)
    x = torch.randn(2, 3, 64, 64)
    outs_ref, outs_cp = ref(x.clone().requires_grad_()), cp(x.clone().requires_grad_())
    for a, b in zip(outs_ref, outs_cp):
        assert torch.allclose(a, b, atol=1e-5)
    sum(o.sum() for o in outs_ref).backward()
    sum(o.sum() for o in outs_cp).backward()
    for (k, p), q in zip(ref.named_parameters(), cp.parameters()):
        if p.grad is not None:
            scale = p.grad.abs().max().item()
            assert torch.allclose(p.grad, q.grad, atol=1e-4 * max(scale, 1.0), rtol=1e-3), k


@pytest.mark.parametrize('name,build,layer_cls,attr', TINY, ids=[t[0] for t in TINY])
def test_channels_last_model_gives_the_nchw_outputs(name, build, layer_cls, attr):
    """model.to(memory_format=torch.channels_last) with an NHWC input: same outputs as in NCHW, in
    inference and in a training step (forward and input gradient)."""
    torch.manual_seed(0)
    ref = build()
    nhwc = build().to(memory_format=torch.channels_last)
    nhwc.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for train in (False, True):
        ref.train(train)
        nhwc.train(train)
        xs = [x.clone().requires_grad_(train), x.contiguous(memory_format=torch.channels_last).requires_grad_(train)]
        with torch.set_grad_enabled(train):
            outs = [m(t) for m, t in zip((ref, nhwc), xs)]
        for a, b in zip(*outs):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
        if train:
            for o, t in zip(outs, xs):
                sum((v ** 2).mean() for v in o).backward()
            torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=1e-4, atol=1e-5)
        if name == 'sge' or (name == 'sa' and not train):  # their channels-last paths keep the block NHWC
            assert all(o.is_contiguous(memory_format=torch.channels_last) for o in outs[1])


@pytest.mark.parametrize('name,build,layer_cls,attr', TINY, ids=[t[0] for t in TINY])
def test_trains_under_autocast(name, build, layer_cls, attr):
    """A training step under autocast (mmdet's AmpOptimWrapper; CPU bfloat16 here, CUDA float16 alike)
    runs, and its gradients follow the float32 ones: the hand-written backwards must run what they
    recompute in the forward's precision."""
    torch.manual_seed(0)
    model = build()
    model.train()
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for amp in (False, True):
        model.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            outs = model(x)
        assert outs[0].dtype == (torch.bfloat16 if amp else torch.float32)
        sum((o.float() ** 2).mean() for o in outs).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert grads[0].shape == grads[1].shape and grads[1].isfinite().all()
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99


def test_caffe_style_moves_stride_to_conv1():
    model = SEResNet(50, base_channels=16, style='caffe')
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].conv2.stride == (1, 1)
    model = EPSANet(50, style='caffe')
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].conv2.conv_1.stride == (1, 1)
    model = EPSANet(50)
    assert model.layer2[0].conv2.conv_4.stride == (2, 2)


def test_gn_norm_cfg():
    model = SAResNet(50, base_channels=16, groups=8, norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))
    assert isinstance(model.layer1[0].norm1, torch.nn.GroupNorm) and isinstance(model.norm1, torch.nn.GroupNorm)
    assert model(torch.randn(1, 3, 64, 64))[-1].shape == (1, 512, 2, 2)


@pytest.mark.parametrize('build,norm', [
    (lambda: SEResNet(18, base_channels=16, reduction=4), 'norm2'),
    (lambda: EPSANet(50, base_channels=16, conv_groups=(1, 2, 4, 4), psa_reduction=2), 'norm3'),
    (lambda: SAResNet(50, base_channels=16, groups=8), 'norm3'),
])
def test_zero_init_residual_and_attention_init_survive_resnet_init(build, norm):
    model = build()
    model.init_weights()
    for layer in (model.layer1, model.layer4):
        for b in layer:
            assert torch.count_nonzero(getattr(b, norm).weight) == 0
    if isinstance(model, SAResNet):  # the ResNet-level constant/kaiming init does not clobber the spec init
        assert torch.equal(model.layer1[0].sa.cbias, torch.ones_like(model.layer1[0].sa.cbias))
    if isinstance(model, EPSANet):
        assert model.layer1[0].conv2.se.fc1.bias.abs().sum() > 0  # PyTorch default, not Kaiming's 0


def test_cbam_spatial_bn_starts_at_zero_after_init_weights():
    model = CBAMResNet(50, base_channels=16)
    model.init_weights()
    bn = model.layer3[1].cbam.SpatialGate.spatial.bn
    assert torch.equal(bn.weight, torch.zeros(1)) and bn.momentum == 0.01


# ----------------------------------------------------------------------------- invalid arguments
@pytest.mark.parametrize('build,exc,match', [
    (lambda: SEResNet(20), KeyError, r'invalid depth 20; supported depths: \[18, 34, 50, 101, 152\]'),
    (lambda: SAResNet(18), KeyError, r'SAResNet: invalid depth 18.*no BasicBlock'),
    (lambda: EPSANet(34), KeyError, r'EPSANet: invalid depth 34.*\[50, 101, 152\]'),
    (lambda: SAResNet(50, base_channels=16), ValueError, r'groups=64 does not fit in_channels=64: in_channels must be divisible by 2 \* groups.*nearest: groups=32'),
    (lambda: ECAResNet(50, kernel_size=(3, 5)), ValueError, r'kernel_size=\(3, 5\) has 2 entries'),
    (lambda: ECAResNet(50, kernel_size=4), ValueError, r'kernel_size must be a positive odd int'),
    (lambda: AttentionResNet(50, attention=dict(type='Nope')), ValueError, r"attention type 'Nope'"),
    (lambda: AttentionResNet(50, attention=[dict(type='SE')] * 3), ValueError, r'3 per-stage configs.*num_stages=4'),
    (lambda: AttentionResNet(50, attention=dict(reduction=4)), ValueError, r"must be a dict with a 'type'"),
    (lambda: AttentionResNet(50, attention='SE'), TypeError, r'attention must be a dict'),
    (lambda: EPSANet(50, base_channels=16), ValueError, r'branch width\)=4 must be divisible by 8'),
    (lambda: EPSANet(50, dcn=dict(type='DCN'), stage_with_dcn=(False, True, True, True)), ValueError,
     r'dcn cannot be used'),
    (lambda: SEResNet(50, style='tensorflow'), AssertionError, None),  # mmdet's bare asserts
    (lambda: SEResNet(50, num_stages=5), ValueError, r'SEResNet: num_stages=5 must be 1, 2, 3 or 4'),
    (lambda: SEResNet(18, plugins=[dict(cfg=dict(type='SE'), position='after_conv3')]), ValueError,
     r"plugin position 'after_conv3' is not supported"),
])
def test_invalid_arguments(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


# ----------------------------------------------------------------------------- plain mmdet ResNet plugins
PLUGINS = [(dict(type='SE'), 'se', SEModule), (dict(type='ECA', kernel_size=5), 'eca', ECAModule),
           (dict(type='SA', groups=8), 'sa', ShuffleAttention), (dict(type='CBAM'), 'cbam', CBAM),
           (dict(type='SGE', groups=8), 'sge', SpatialGroupEnhance), (dict(type='SEModule'), 'se', SEModule)]


@pytest.mark.parametrize('cfg,name,cls', PLUGINS, ids=[p[0]['type'] for p in PLUGINS])
def test_after_conv3_plugin_in_plain_mmdet_resnet(mmdet_scope, cfg, name, cls):
    stages = (False, True, True, True)
    model = ResNet(50, base_channels=16, plugins=[dict(cfg=cfg, position='after_conv3', stages=stages)])
    assert not hasattr(model.layer1[0], name)
    for i, layer in enumerate((model.layer2, model.layer3, model.layer4)):
        for b in layer:
            assert isinstance(getattr(b, name), cls) and getattr(b, name).in_channels == 128 * 2**i
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
    assert any(k.startswith(f'layer2.0.{name}.') for k in model.state_dict())


def test_generic_attention_accepts_other_registered_plugins():
    model = AttentionResNet(50, base_channels=16, attention=[None, None, dict(type='ContextBlock', ratio=1 / 4), None])
    assert hasattr(model.layer3[0], 'context_block') and not hasattr(model.layer2[0], 'context_block')
    assert model(torch.randn(1, 3, 64, 64))[2].shape == (1, 256, 4, 4)
