"""Attention layers: shapes, gradients, exact parameter counts, init, errors, and equivalence to the
spec's formulas (tests/reference.py) in forward and backward."""
import subprocess
import sys

import pytest
import torch

from mmattn.layers import (ATTENTION_LAYERS, CBAM, ECAModule, PSAModule, SEModule, ShuffleAttention,
                           SpatialGroupEnhance, create_attention, eca_kernel_size, get_attention_layer)
from reference import ref_cbam, ref_eca, ref_psa, ref_sa, ref_se, ref_sge

CHANNELS = (256, 512, 1024, 2048)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def perturb(module, seed=0):
    """Random parameters (and BN statistics) so no gate is constant and every gradient is non-zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5 + 0.1)
        for name, b in module.named_buffers():
            if name.endswith('running_var'):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return module


# (name, constructor, per-C parameter counts from the spec for C = 256/512/1024/2048)
COUNTS = [
    ('se', lambda c: SEModule(c), (8464, 33312, 132160, 526464)),
    ('se-nobias', lambda c: SEModule(c, bias=False), (8192, 32768, 131072, 524288)),
    ('eca-k5', lambda c: ECAModule(c, kernel_size=5), (5, 5, 5, 5)),
    ('sa', lambda c: ShuffleAttention(c), (12, 24, 48, 96)),
    ('cbam', lambda c: CBAM(c), (8564, 33412, 132260, 526564)),
    ('sge', lambda c: SpatialGroupEnhance(c), (128, 128, 128, 128)),
]


@pytest.mark.parametrize('name,build,counts', COUNTS, ids=[c[0] for c in COUNTS])
def test_param_counts_match_official(name, build, counts):
    assert tuple(n_params(build(c)) for c in CHANNELS) == counts


def test_psa_param_counts_match_official():
    assert [n_params(PSAModule(p)) for p in (64, 128, 256, 512)] == [27121, 108450, 433732, 1734792]


LAYERS = [
    ('se', lambda: SEModule(64, reduction=4)),
    ('eca', lambda: ECAModule(64, kernel_size=5)),
    ('sa', lambda: ShuffleAttention(64, groups=8)),
    ('sa-odd-groups', lambda: ShuffleAttention(64, groups=1)),
    ('psa', lambda: PSAModule(64, reduction=4)),
    ('cbam', lambda: CBAM(64, reduction=4).eval()),
    ('sge', lambda: SpatialGroupEnhance(64, groups=8)),
]


@pytest.mark.parametrize('name,build', LAYERS, ids=[n for n, _ in LAYERS])
def test_shape_and_gradient_reaches_every_parameter(name, build):
    torch.manual_seed(0)
    layer = perturb(build())
    x = torch.randn(2, 64, 9, 7, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f'{name}: no gradient reaches {pname}'


MAPS = [
    ('se', lambda: SEModule(64, reduction=4), lambda x, m: x * m['channel']),
    ('eca', lambda: ECAModule(64, kernel_size=5), lambda x, m: x * m['channel']),
    ('cbam', lambda: CBAM(64, reduction=4).eval(), lambda x, m: x * m['channel'] * m['spatial']),
    ('cbam-no-spatial', lambda: CBAM(64, reduction=4, no_spatial=True), lambda x, m: x * m['channel']),
]


@pytest.mark.parametrize('name,build,apply', MAPS, ids=[m[0] for m in MAPS])
def test_attention_maps_are_the_gates_forward_applies(name, build, apply):
    layer = perturb(build())
    x = torch.randn(2, 64, 9, 7)
    maps = layer.attention_maps(x)
    assert maps['channel'].shape == (2, 64, 1, 1) and ((maps['channel'] >= 0) & (maps['channel'] <= 1)).all()
    assert set(maps) == ({'channel', 'spatial'} if name == 'cbam' else {'channel'})
    if 'spatial' in maps:
        assert maps['spatial'].shape == (2, 1, 9, 7)
    torch.testing.assert_close(apply(x, maps), layer(x))


def test_psa_attention_maps_weigh_the_branches_in_their_order():
    layer = perturb(PSAModule(64, reduction=4))
    x = torch.randn(2, 64, 6, 5)
    scale = layer.attention_maps(x)['scale']
    assert scale.shape == (2, 4, 16, 1, 1)
    torch.testing.assert_close(scale.sum(1), torch.ones(2, 16, 1, 1))
    # y = concat(A_4 F_4, ..., A_1 F_1): chunk 4 - i of the output is A_i F_i (i = 1..4)
    y = layer(x)
    for i in range(4):
        torch.testing.assert_close(y.chunk(4, 1)[3 - i], scale[:, i] * getattr(layer, f'conv_{i + 1}')(x))


def test_psa_stride_and_channels():
    y = PSAModule(64, 128, stride=2)(torch.randn(1, 64, 9, 8))
    assert y.shape == (1, 128, 5, 4)


# ----------------------------------------------------------------------------- equivalence to the spec
def _close(a, b, tol=1e-5):
    err = (a - b).abs().max().item()
    scale = b.abs().max().item()
    assert err <= tol * max(scale, 1.0), f'max abs error {err:.3g} (scale {scale:.3g})'


def _check_forward_backward(layer, ref, shape=(2, 128, 7, 6), seed=0):
    """Same output and the same gradients (input and parameters) as the reference formula; the same
    output without autograd too (the inference paths)."""
    torch.manual_seed(seed)
    perturb(layer, seed)
    x = torch.randn(*shape)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    params = dict(layer.named_parameters())
    ref_params = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    y1, y2 = layer(x1), ref(x2, ref_params)
    _close(y1, y2)
    with torch.no_grad():
        _close(layer(x.clone()), y2)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    _close(x1.grad, x2.grad)
    for k in params:
        _close(params[k].grad, ref_params[k].grad)


@pytest.mark.parametrize('bias', [True, False])
def test_se_equals_reference(bias):
    _check_forward_backward(SEModule(128, bias=bias), lambda x, p: ref_se(
        x, p['fc.0.weight'], p.get('fc.0.bias'), p['fc.2.weight'], p.get('fc.2.bias')))


@pytest.mark.parametrize('k', [1, 3, 5, 7])
def test_eca_equals_reference(k):
    _check_forward_backward(ECAModule(128, kernel_size=k), lambda x, p: ref_eca(x, p['conv.weight']))


@pytest.mark.parametrize('groups', [64, 8])
def test_sa_equals_reference(groups):
    names = ('cweight', 'cbias', 'sweight', 'sbias', 'gn.weight', 'gn.bias')
    _check_forward_backward(ShuffleAttention(128, groups), lambda x, p: ref_sa(x, groups, *(p[n] for n in names)),
                            shape=(2, 128, 5, 6))


@pytest.mark.parametrize('order', [('max', 'mean'), ('mean', 'max')])
def test_cbam_equals_reference(order):
    layer = CBAM(128, spatial_pool_order=order).eval()
    bn = layer.SpatialGate.spatial.bn

    def ref(x, p):
        stats = {'weight': p['SpatialGate.spatial.bn.weight'], 'bias': p['SpatialGate.spatial.bn.bias'],
                 'running_mean': bn.running_mean, 'running_var': bn.running_var}
        return ref_cbam(x, p['ChannelGate.mlp.1.weight'], p['ChannelGate.mlp.1.bias'], p['ChannelGate.mlp.3.weight'],
                        p['ChannelGate.mlp.3.bias'], p['SpatialGate.spatial.conv.weight'], stats, order)

    _check_forward_backward(layer, ref)


def test_sge_equals_reference():
    _check_forward_backward(SpatialGroupEnhance(128, 64), lambda x, p: ref_sge(x, 64, p['weight'], p['bias']))


@pytest.mark.parametrize('stride', [1, 2])
def test_psa_equals_reference_reversed_concat(stride):
    layer = PSAModule(64, stride=stride, reduction=4)
    _check_forward_backward(layer, lambda x, p: ref_psa(
        x, [p[f'conv_{i}.weight'] for i in range(1, 5)], p['se.fc1.weight'], p['se.fc1.bias'],
        p['se.fc2.weight'], p['se.fc2.bias'], stride=stride), shape=(2, 64, 9, 8))


def test_psa_natural_order_would_differ():
    """The reversed concatenation is real: flipping the branch chunks changes the output."""
    layer = perturb(PSAModule(64, reduction=4))
    x = torch.randn(1, 64, 6, 6)
    y = layer(x)
    natural = torch.cat(list(y.chunk(4, dim=1))[::-1], dim=1)
    assert not torch.allclose(y, natural)


# ----------------------------------------------------------------------------- init as specified
def test_init_as_specified():
    sa = ShuffleAttention(256)
    assert torch.equal(sa.cweight, torch.zeros(1, 2, 1, 1)) and torch.equal(sa.sweight, torch.zeros(1, 2, 1, 1))
    assert torch.equal(sa.cbias, torch.ones(1, 2, 1, 1)) and torch.equal(sa.sbias, torch.ones(1, 2, 1, 1))
    assert sa.gn.num_groups == sa.gn.num_channels == 2
    x = torch.randn(1, 256, 4, 4)
    # both gates start at the constant sigmoid(1), and the shuffle is a pure permutation of x * 0.7311
    y = sa(x)
    idx = [(o % 2) * 128 + o // 2 for o in range(256)]
    assert torch.allclose(y, x[:, idx] * torch.sigmoid(torch.tensor(1.0)), atol=1e-6)

    sge = SpatialGroupEnhance(256)
    assert torch.equal(sge.weight, torch.zeros(1, 64, 1, 1)) and torch.equal(sge.bias, torch.ones(1, 64, 1, 1))

    cbam = CBAM(256)
    bn = cbam.SpatialGate.spatial.bn
    assert torch.equal(bn.weight, torch.zeros(1)) and bn.momentum == 0.01 and bn.eps == 1e-5
    assert torch.equal(cbam.ChannelGate.mlp[1].bias, torch.zeros(16))
    assert torch.equal(cbam.ChannelGate.mlp[3].bias, torch.zeros(256))
    assert cbam.SpatialGate.spatial.conv.bias is None
    assert cbam.SpatialGate.pool_order == ('max', 'mean')  # official order (timm: mean, max)
    assert cbam.ChannelGate.pool_types == ('avg', 'max')

    psa = PSAModule(256)
    w = psa.conv_1.weight  # kaiming fan_out: std sqrt(2 / (3*3*64))
    assert abs(w.std().item() - (2 / (9 * 64))**0.5) < 0.1 * (2 / (9 * 64))**0.5
    assert psa.se.fc1.bias.abs().sum() > 0  # PyTorch default bias init kept

    eca = ECAModule(256, kernel_size=5)
    assert eca.conv.bias is None and eca.conv.padding == (2, )


def test_init_weights_restores_spec_init_after_generic_init():
    """mmdet's ResNet init (Kaiming conv, constant BN/GN) runs first; each layer's init_weights() must
    bring back its own init (called by mmengine's BaseModule.init_weights on children)."""
    cbam = CBAM(64, reduction=4)
    torch.nn.init.constant_(cbam.SpatialGate.spatial.bn.weight, 1.0)
    cbam.init_weights()
    assert torch.equal(cbam.SpatialGate.spatial.bn.weight, torch.zeros(1))
    sa = perturb(ShuffleAttention(64, 8))
    sa.init_weights()
    assert torch.equal(sa.cbias, torch.ones_like(sa.cbias)) and torch.equal(sa.cweight, torch.zeros_like(sa.cweight))


# ----------------------------------------------------------------------------- rules, factory, errors
@pytest.mark.parametrize('c,k', [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7), (4, 1)])
def test_eca_adaptive_kernel_rule(c, k):
    assert eca_kernel_size(c) == k
    assert ECAModule(c, kernel_size='adaptive').conv.weight.shape == (1, 1, k)


def test_factory_by_name_class_and_alias():
    for short, cls in ATTENTION_LAYERS.items():
        assert get_attention_layer(short) is cls
        assert get_attention_layer(short.upper()) is cls
        assert get_attention_layer(cls.__name__) is cls
    layer = create_attention('eca', 256, kernel_size=7)
    assert isinstance(layer, ECAModule) and layer.kernel_size == 7
    with pytest.raises(ValueError, match=r"unknown attention type 'SK'.*se \(SEModule\)"):
        create_attention('SK', 256)


@pytest.mark.parametrize('build,match', [
    (lambda: ShuffleAttention(192, groups=64), r'groups=64 does not fit in_channels=192.*Valid groups for in_channels=192: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 96 \(nearest: groups=48\)'),
    (lambda: ShuffleAttention(256, groups=0), r'groups must be a positive int, got 0'),
    (lambda: SEModule(8, reduction=16), r'in_channels=8 // reduction=16 = 0'),
    (lambda: ECAModule(64, kernel_size=4), r"kernel_size must be a positive odd int or 'adaptive', got 4"),
    (lambda: ECAModule(64, kernel_size='auto'), r"got 'auto'"),
    (lambda: PSAModule(66), r'out_channels=66 must be divisible by 4'),
    (lambda: PSAModule(96), r'branch width\)=24 must be divisible by 16'),
    (lambda: PSAModule(64, conv_kernels=(3, 5, 7)), r'conv_kernels \(length 3\) and conv_groups \(length 4\)'),
    (lambda: PSAModule(64, conv_kernels=(3, 5, 7, 8)), r'conv_kernels\[3\] must be a positive odd int, got 8'),
    (lambda: CBAM(64, pool_types=('avg', 'median')), r"pool_types=\['avg', 'median'\] is invalid"),
    (lambda: CBAM(64, spatial_pool_order=('max', 'max')), r'must be an ordering of'),
    (lambda: SpatialGroupEnhance(96, groups=64), r'groups=64 does not fit in_channels=96.*Valid groups for in_channels=96: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 96 \(nearest: groups=48\)'),
])
def test_invalid_arguments_name_argument_value_and_fix(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_sge_refuses_single_pixel_maps():
    with pytest.raises(ValueError, match=r'at least 2 spatial positions'):
        SpatialGroupEnhance(64, 8)(torch.randn(1, 64, 1, 1))


def test_cbam_no_spatial_and_channels_last():
    layer = perturb(CBAM(64, reduction=4, no_spatial=True))
    assert layer.SpatialGate is None and n_params(layer) == 64 * 16 + 16 + 16 * 64 + 64
    x = torch.randn(2, 64, 5, 5)
    for name, build in LAYERS:
        m = perturb(build()).eval()
        assert torch.allclose(m(x.contiguous(memory_format=torch.channels_last)), m(x), atol=1e-5), name


def test_layers_import_and_run_with_torch_alone():
    code = ('import sys\n'
            'for m in ("mmcv", "mmdet", "mmengine"): sys.modules[m] = None\n'
            'import torch, mmattn.layers as L\n'
            'x = torch.randn(1, 256, 4, 4)\n'
            'for k in L.ATTENTION_LAYERS: assert L.create_attention(k, 256)(x).shape == x.shape\n'
            'print("ok")\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr
