"""Fused ``identity + SA(x)`` (mmattn.fused.shuffle_attention) against the layer's plain formula: values
and gradients (float64 and float32, NCHW and channels-last, even and odd groups, with and without
autograd, chunked backward), the BN-output rebuild through the door, and the layer's attention maps."""
import pytest
import torch

from mmattn.fused import fused, gated_residual
from mmattn.fused.shuffle_attention import _SAResidualChannelsLastFn, _SAResidualFn, sa_residual
from mmattn.layers import ShuffleAttention

NCHW, NHWC = torch.contiguous_format, torch.channels_last
TOLERANCES = [(torch.float64, 1e-12), (torch.float32, 1e-5)]


def _layer(channels=24, groups=4, dtype=torch.float32):
    """SA with random parameters (at the official init both gates are constant)."""
    layer = ShuffleAttention(channels, groups).to(dtype)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
    return layer


def _inputs(shape=(2, 24, 5, 6), dtype=torch.float32, fmt=NCHW):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g, dtype=dtype) * 1.5 + 0.5
    identity = torch.randn(shape, generator=g, dtype=dtype)
    return x.contiguous(memory_format=fmt), identity.contiguous(memory_format=fmt)


def _run(fn, layer, x, identity):
    """[output, dx, d identity, parameter grads...] of ``fn(layer, x, identity)`` for a fixed output gradient."""
    x, identity = (t.detach().clone().requires_grad_() for t in (x, identity))
    layer.zero_grad()
    out = fn(layer, x, identity)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype)
    (out * weights).sum().backward()
    return [out, x.grad, identity.grad] + [p.grad.clone() for p in layer.parameters()]


def _plain(layer, x, identity):
    return identity + layer(x)


def _fused(layer, x, identity):
    return sa_residual(layer, x, identity, False)


def _is_nhwc(t):
    return t.is_contiguous(memory_format=NHWC) and not t.is_contiguous()


@pytest.mark.parametrize('groups', [4, 3], ids=['even-groups', 'odd-groups'])
@pytest.mark.parametrize('fmt', [NCHW, NHWC], ids=['nchw', 'channels-last'])
@pytest.mark.parametrize('dtype,tol', TOLERANCES, ids=['float64', 'float32'])
def test_fused_equals_plain(dtype, tol, fmt, groups, chunking):
    """Values and every gradient; without autograd the same values; never a view; a channels-last x
    gives a channels-last result and dx."""
    layer = _layer(24, groups, dtype)
    x, identity = _inputs(dtype=dtype, fmt=fmt)
    mine, ref = _run(_fused, layer, x, identity), _run(_plain, layer, x, identity)
    for a, b in zip(mine, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=tol * 10, atol=tol * 10)
    assert mine[0]._base is None
    if fmt == NHWC:
        assert _is_nhwc(mine[0]) and _is_nhwc(mine[1])
    with torch.no_grad():
        out = sa_residual(layer, x, identity, False)
    torch.testing.assert_close(out, ref[0].detach(), rtol=tol, atol=tol)
    assert out._base is None and (_is_nhwc(out) or fmt == NCHW)


@pytest.mark.parametrize('fmt', [NCHW, NHWC], ids=['nchw', 'channels-last'])
def test_out_x_without_autograd(fmt):
    """out_x lets a channels-last result take x's memory (x is read by its shuffle first); in NCHW the
    shuffled result cannot, and x is left as it was. (The identity in NCHW either way.)"""
    layer = _layer()
    x, identity = _inputs(fmt=fmt)
    identity = identity.contiguous()
    expected = _plain(layer, x, identity).detach()
    own = x.clone(memory_format=fmt)
    with torch.no_grad():
        out = sa_residual(layer, own, identity, True)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(sa_residual(layer, x, identity, False), expected, rtol=1e-5, atol=1e-5)
    assert (out.data_ptr() == own.data_ptr()) is (fmt == NHWC)
    if fmt == NCHW:
        assert torch.equal(own, x)


@pytest.mark.parametrize('fmt', [NCHW, NHWC], ids=['nchw', 'channels-last'])
@pytest.mark.parametrize('bn_train', [True, False], ids=['bn-train', 'bn-eval'])
def test_door_with_bn_rebuild_equals_plain(bn_train, fmt, chunking):
    """Through ``gated_residual`` with the BN output rebuilt in the backward (out_x=True: dx or the
    result written over x's memory): the plain values and gradients, BN parameters included."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(24).train(bn_train)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    bn_state = {k: v.clone() for k, v in bn.state_dict().items()}
    layer = _layer()
    u0, identity = _inputs(fmt=fmt)
    results = []
    for use_fused in (True, False):
        bn.load_state_dict(bn_state)
        bn.zero_grad()

        def fn(layer, u, identity):
            with fused(use_fused):
                return gated_residual(layer, bn(u), identity, overwrite_x=True, bn=bn, bn_input=u)

        results.append(_run(fn, layer, u0, identity) + [bn.weight.grad.clone(), bn.bias.grad.clone()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_door_copy_of_x_is_not_backward_scratch():
    """An x that is neither NCHW- nor NHWC-contiguous is copied to NCHW; autograd keeps that copy (no
    rebuild), so the backward must not write dx over it: a second backward (retain_graph) gives the
    same gradients."""
    layer = _layer()
    x0, identity = _inputs()
    x = x0.transpose(2, 3).contiguous().transpose(2, 3).requires_grad_()  # strides of neither layout
    out = sa_residual(layer, x * 1, identity, True)  # x's memory is the caller's; the copy is autograd's
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    first = torch.autograd.grad((out * weights).sum(), x, retain_graph=True)[0]
    torch.testing.assert_close(torch.autograd.grad((out * weights).sum(), x)[0], first, rtol=0, atol=0)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_takes_the_plain_formula(dtype):
    """float16 / bfloat16 x take the plain formula (its GroupNorm runs in float32 under autocast): the fused
    statistics in half precision overflowed (rstd^3 in float16 for a near-constant channel) or lost
    digits of the parameter gradients."""
    layer = _layer()
    x, identity = _inputs()
    x = (1 + 1e-3 * x).to(dtype).requires_grad_()  # near-constant channels: rstd^3 ~ 1e9 > float16's max
    identity = identity.to(dtype)
    out = sa_residual(layer, x, identity, False)
    grad = torch.autograd.grad(out.float().sum(), x)[0]
    x_ref = x.detach().clone().requires_grad_()
    ref = (identity + layer(x_ref)).to(dtype)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(grad, torch.autograd.grad(ref.float().sum(), x_ref)[0], rtol=0, atol=0)
    assert torch.isfinite(grad).all()


def test_backwards_pass_gradcheck(chunking):
    layer = _layer(12, 2, torch.float64)
    x, identity = _inputs((2, 12, 4, 3), torch.float64)
    params = tuple(p.detach().view(-1, 1, 1).requires_grad_() for p in
                   (layer.cweight, layer.cbias, layer.sweight, layer.sbias, layer.gn.weight, layer.gn.bias))
    x, identity = x.requires_grad_(), identity.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, i, *p: _SAResidualFn.apply(x, i, False, 2, 1e-5, *p),
                                    (x, identity) + params, fast_mode=True)
    for groups in (2, 3):  # channels-last: the backward works in the output's order, for any G
        x_nhwc = x.detach().contiguous(memory_format=NHWC).requires_grad_()
        assert torch.autograd.gradcheck(
            lambda x, i, *p: _SAResidualChannelsLastFn.apply(x, i, False, groups, 1e-5, *p),
            (x_nhwc, identity) + tuple(t.detach()[:12 // (2 * groups)].requires_grad_() for t in params),
            fast_mode=True)


def test_backward_on_an_empty_batch():
    layer = _layer()
    x, identity = _inputs((0, 24, 5, 6))
    x.requires_grad_()
    sa_residual(layer, x, identity, False).sum().backward()
    assert x.grad.shape == x.shape and all((p.grad == 0).all() for p in layer.parameters())


def test_keeps_one_feature_map_for_backward():
    """Autograd keeps x (and per-channel values) only: not the full-size sigmoid, not a shuffled copy."""
    layer = _layer(16, 4)
    for fmt in (NCHW, NHWC):
        x, identity = _inputs((2, 16, 16, 16), fmt=fmt)
        x.requires_grad_()
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            sa_residual(layer, x, identity, False)
        assert sum(s for s in sizes if s >= x.numel() // 2) == x.numel(), fmt


@pytest.mark.parametrize('groups', [4, 3], ids=['even-groups', 'odd-groups'])
def test_under_autocast(groups):
    """Under autocast (CPU bfloat16 standing in for CUDA float16) the fused form keeps x's dtype (its
    half-precision inputs take the plain formula, cast back) and its backward follows the float32 one."""
    layer = _layer(24, groups)
    x, identity = _inputs()
    x32 = x.clone().requires_grad_()
    (sa_residual(layer, x32, identity, False) ** 2).sum().backward()
    xa = x.bfloat16().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = sa_residual(layer, xa, identity.bfloat16(), False)
    assert out.dtype == torch.bfloat16
    (out.float() ** 2).sum().backward()
    assert xa.grad.dtype == torch.bfloat16
    assert torch.nn.functional.cosine_similarity(xa.grad.float().flatten(), x32.grad.flatten(), dim=0) > 0.99


def test_attention_maps_are_the_gates_forward_applies():
    """forward(x) == shuffle(x * gates) with the documented indexing: map index g C'' + j is input channel
    g C' + j (channel branch) or g C' + C'' + j (spatial branch); output channel o is pre-shuffle channel
    (o mod 2) C/2 + o // 2."""
    layer = _layer(24, 4)
    x, _ = _inputs()
    maps = layer.attention_maps(x)
    assert maps['channel'].shape == (2, 12, 1, 1) and maps['spatial'].shape == (2, 12, 5, 6)
    half, per_group = 3, 6
    pre = torch.empty_like(x)
    for g in range(4):
        for j in range(half):
            pre[:, g * per_group + j] = x[:, g * per_group + j] * maps['channel'][:, g * half + j]
            pre[:, g * per_group + half + j] = x[:, g * per_group + half + j] * maps['spatial'][:, g * half + j]
    torch.testing.assert_close(layer(x), pre[:, [(o % 2) * 12 + o // 2 for o in range(24)]])
