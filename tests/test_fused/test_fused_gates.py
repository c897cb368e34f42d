"""Fused ``identity + gate(x)`` (SE, ECA, CBAM through :func:`mmattn.fused.gated_residual`) and PSA's
fused forward against the layers' own plain formulas: values, input / identity / parameter gradients
and BN statistics, float64 and float32, NCHW and channels-last, eval and train, under autocast, and
the in-place writes (only where autograd keeps nothing of x)."""
import copy

import pytest
import torch

from mmattn.fused import fused, fused_forward, gated_residual
from mmattn.layers import CBAM, ECAModule, PSAModule, SEModule

GATES = [
    ('se', lambda: SEModule(16, reduction=4)),
    ('se-nobias', lambda: SEModule(16, reduction=4, bias=False)),
    ('eca', lambda: ECAModule(16, kernel_size=3)),
    ('cbam', lambda: CBAM(16, reduction=4)),
    ('cbam-timm-order', lambda: CBAM(16, reduction=4, pool_types=('max', 'avg'), spatial_pool_order=('mean', 'max'))),
    ('cbam-avg', lambda: CBAM(16, reduction=4, pool_types=('avg', ))),
    ('cbam-max', lambda: CBAM(16, reduction=4, pool_types=('max', ))),
    ('cbam-lse', lambda: CBAM(16, reduction=4, pool_types=('avg', 'lse'))),  # the plain formula with autograd
    ('cbam-no-spatial', lambda: CBAM(16, reduction=4, no_spatial=True)),
]
IDS = [g[0] for g in GATES]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _gate(build, dtype=torch.float32, seed=0):
    """Random parameters and BN statistics, away from the official (near-constant) init."""
    torch.manual_seed(seed)
    layer = build().to(dtype)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + 0.1)
        for name, b in layer.named_buffers():
            if name.endswith('running_var'):
                b.uniform_(0.5, 1.5)
            elif name.endswith('running_mean'):
                b.normal_(0, 0.1)
    return layer


def _inputs(dtype, channels_last, shape=(3, 16, 6, 5)):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g, dtype=dtype) * 1.5 + 0.5
    identity = torch.randn(shape, generator=g, dtype=dtype)
    if channels_last:
        x, identity = (t.contiguous(memory_format=torch.channels_last) for t in (x, identity))
    return x, identity


def _run(layer, x, identity, plain):
    """Output and gradients (x, identity, parameters) for a fixed random output gradient."""
    x, identity = x.clone().requires_grad_(), identity.clone().requires_grad_()
    layer.zero_grad()
    with fused(False if plain else None):
        out = gated_residual(layer, x, identity)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype)
    (out * grad).sum().backward()
    return [out.detach(), x.grad, identity.grad] + [p.grad for p in layer.parameters()]


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'nhwc'])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32], ids=['f64', 'f32'])
@pytest.mark.parametrize('name,build', GATES, ids=IDS)
def test_fused_equals_plain(name, build, dtype, channels_last, train):
    fused_layer = _gate(build, dtype).train(train)
    plain_layer = copy.deepcopy(fused_layer)
    x, identity = _inputs(dtype, channels_last)
    mine, ref = _run(fused_layer, x, identity, False), _run(plain_layer, x, identity, True)
    for i, (a, b) in enumerate(zip(mine, ref)):
        torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype], msg=f'{name}: tensor {i}')
    for (key, a), b in zip(fused_layer.named_buffers(), plain_layer.buffers()):  # BN statistics: updated once
        torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype], msg=key)
    if channels_last:  # the gradient of x comes back in x's layout
        assert mine[1].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('bn_train', [False, True], ids=['bn-eval', 'bn-train'])
@pytest.mark.parametrize('name,build', GATES, ids=IDS)
def test_door_with_bn_rebuild_equals_plain(name, build, bn_train):
    """As the blocks call the door (x = bn(u), overwrite_x, the BN-output rebuild in the backward): the
    plain gradients, also for the forms that fall back to the plain formula (amax's backward compares
    with x, which the rebuild reproduces only up to rounding)."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(16).train(bn_train)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    layer = _gate(build).train()
    u0, identity = _inputs(torch.float32, False, shape=(2, 16, 9, 9))
    results = []
    for plain in (False, True):
        b, g = copy.deepcopy(bn), copy.deepcopy(layer)
        u = u0.clone().requires_grad_()
        with fused(False if plain else None):
            out = gated_residual(g, b(u), identity, overwrite_x=True, bn=b, bn_input=u)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out.detach(), u.grad] + [p.grad for p in (*b.parameters(), *g.parameters())])
    for i, (a, b) in enumerate(zip(*results)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=f'{name}: tensor {i}')


@pytest.mark.parametrize('name,build', [g for g in GATES if g[0] in ('se', 'eca', 'cbam', 'cbam-max')],
                         ids=['se', 'eca', 'cbam', 'cbam-max'])
@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
def test_fused_backward_passes_gradcheck(name, build, train):
    """The hand-written backwards against finite differences (x, identity and every parameter)."""
    layer = _gate(build, torch.float64).train(train)
    x, identity = _inputs(torch.float64, channels_last=train, shape=(2, 16, 3, 4))
    params = tuple(layer.parameters())
    fn = lambda x, identity, *p: gated_residual(layer, x, identity)  # noqa: E731 (params perturbed in place)
    assert torch.autograd.gradcheck(fn, (x.requires_grad_(), identity.requires_grad_()) + params, fast_mode=True)


@pytest.mark.parametrize('name,build', GATES, ids=IDS)
def test_no_grad_writes_over_x_only_when_asked(name, build):
    layer = _gate(build).eval()
    x, identity = _inputs(torch.float32, False)
    expected = identity + layer(x)
    with torch.no_grad():
        own = x.clone()
        out = gated_residual(layer, own, identity, overwrite_x=True)
        assert out.data_ptr() == own.data_ptr()
        kept = x.clone()
        out2 = gated_residual(layer, kept, identity)
        assert out2.data_ptr() != kept.data_ptr() and torch.equal(kept, x)
    for o in (out, out2):
        assert o._base is None  # never a view: the block's in-place ReLU may follow
        torch.testing.assert_close(o, expected)


@pytest.mark.parametrize('grad', [False, True], ids=['no_grad', 'grad'])
@pytest.mark.parametrize('name,build', GATES[:5], ids=IDS[:5])
def test_under_autocast(name, build, grad):
    """CPU bfloat16 autocast (standing in for CUDA float16): the fused result keeps x's dtype and is close to
    the float32 one, gradients too, whether x arrives in float32 or in bfloat16."""
    layer = _gate(build).eval()
    x, identity = _inputs(torch.float32, False)
    x32 = x.clone().requires_grad_()
    ref = gated_residual(layer, x32, identity)
    (ref ** 2).sum().backward()
    for dtype in (torch.float32, torch.bfloat16):
        xa = x.to(dtype, copy=True).requires_grad_(grad)
        with torch.autocast('cpu', dtype=torch.bfloat16), torch.set_grad_enabled(grad):
            out = gated_residual(layer, xa, identity.to(dtype), overwrite_x=not grad)
        assert out.dtype == dtype
        assert torch.nn.functional.cosine_similarity(out.float().flatten(), ref.detach().flatten(), dim=0) > 0.999
        if grad:
            (out.float() ** 2).sum().backward()
            assert xa.grad.dtype == dtype
            assert torch.nn.functional.cosine_similarity(xa.grad.float().flatten(), x32.grad.flatten(), dim=0) > 0.99


@pytest.mark.parametrize('grad', [False, True], ids=['no_grad', 'grad'])
@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'nhwc'])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32], ids=['f64', 'f32'])
def test_psa_fused_forward_equals_plain(dtype, channels_last, grad):
    layer = _gate(lambda: PSAModule(16, 32, stride=2, conv_groups=(1, 2, 4, 4), reduction=2), dtype)
    x, _ = _inputs(dtype, channels_last, shape=(2, 16, 7, 6))
    results = []
    for plain in (False, True):
        xi = x.clone().requires_grad_(grad)
        layer.zero_grad()
        with fused(False if plain else None), torch.set_grad_enabled(grad):
            out = fused_forward(layer, xi)
        results.append([out.detach()])
        if grad:
            (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum().backward()
            results[-1] += [xi.grad] + [p.grad.clone() for p in layer.parameters()]
    assert results[0][0].shape == (2, 32, 4, 3)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype])
