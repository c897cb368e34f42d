"""Fused ``identity + SGE(x)`` (mmattn.fused.sge) against the layer's plain formula, forward and backward;
and SGE at zero spread (a group's score constant over H, W): finite, with the official expression's
gradient, in the plain layer, in the fused form and in a from-scratch training step."""
import pytest
import torch
import torch.nn.functional as F

from mmattn.fused import fused, gated_residual
from mmattn.fused import sge as fused_sge
from mmattn.fused.sge import _SGEResidualFn, sge_residual
from mmattn.layers import SpatialGroupEnhance

NCHW, NHWC = torch.contiguous_format, torch.channels_last
TOLERANCES = [(torch.float64, 1e-12), (torch.float32, 1e-5)]


def official_sge(x, weight, bias, groups):
    """The official PytorchInsight forward (SpatialGroupEnhance.forward), written out as it is there."""
    b, c, h, w = x.size()
    x = x.reshape(b * groups, -1, h, w)
    xn = x * F.adaptive_avg_pool2d(x, 1)
    xn = xn.sum(dim=1, keepdim=True)
    t = xn.view(b * groups, -1)
    t = t - t.mean(dim=1, keepdim=True)
    std = t.std(dim=1, keepdim=True) + 1e-5
    t = t / std
    t = t.view(b, groups, h, w)
    t = t * weight + bias
    t = t.view(b * groups, 1, h, w)
    x = x * torch.sigmoid(t)
    return x.view(b, c, h, w)


def _layer(channels=12, groups=3, dtype=torch.float32):
    """SGE with random parameters (at the official init, weight 0, the gate is constant)."""
    layer = SpatialGroupEnhance(channels, groups).to(dtype)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
    return layer


def _inputs(shape=(2, 12, 4, 5), dtype=torch.float32, fmt=NCHW, offset=0.0):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g, dtype=dtype) + offset
    identity = torch.randn(shape, generator=g, dtype=dtype)
    return x.contiguous(memory_format=fmt), identity.contiguous(memory_format=fmt)


def _run(fn, layer, x, identity):
    """[output, dx, d identity, d weight, d bias] of ``fn(layer, x, identity)`` for a fixed output gradient."""
    x, identity = (t.detach().clone().requires_grad_() for t in (x, identity))
    layer.zero_grad()
    out = fn(layer, x, identity)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype)
    (out * weights).sum().backward()
    return [out, x.grad, identity.grad, layer.weight.grad.clone(), layer.bias.grad.clone()]


def _plain(layer, x, identity):
    return identity + layer(x)


def _fused(layer, x, identity):
    return sge_residual(layer, x, identity, False)


def _official(layer, x, identity):
    return identity + official_sge(x, layer.weight, layer.bias, layer.groups)


def _is_nhwc(t):
    return t.is_contiguous(memory_format=NHWC) and not t.is_contiguous()


@pytest.mark.parametrize('fmt', [NCHW, NHWC], ids=['nchw', 'channels-last'])
@pytest.mark.parametrize('offset', [0.0, 2.0], ids=['centred', 'offset'])  # offset: score mean >> its std
@pytest.mark.parametrize('dtype,tol', TOLERANCES, ids=['float64', 'float32'])
def test_fused_equals_plain(dtype, tol, offset, fmt):
    """Values and every gradient; without autograd the same values; never a view; a channels-last x
    gives a channels-last result and dx."""
    layer = _layer(dtype=dtype)
    x, identity = _inputs(dtype=dtype, fmt=fmt, offset=offset)
    mine, ref = _run(_fused, layer, x, identity), _run(_plain, layer, x, identity)
    for a, b in zip(mine, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=tol * 10, atol=tol * 10)
    assert mine[0]._base is None and all(_is_nhwc(t) == (fmt == NHWC) for t in mine[:2])
    with torch.no_grad():
        out = sge_residual(layer, x, identity, False)
    torch.testing.assert_close(out, ref[0].detach(), rtol=tol, atol=tol)
    assert out._base is None and _is_nhwc(out) == (fmt == NHWC)


@pytest.mark.parametrize('fmt', [NCHW, NHWC], ids=['nchw', 'channels-last'])
def test_backward_passes_gradcheck(fmt):
    layer = _layer(dtype=torch.float64)
    x, identity = _inputs(dtype=torch.float64, fmt=fmt)
    inputs = [t.detach().requires_grad_() for t in (x, identity, layer.weight, layer.bias)]
    assert torch.autograd.gradcheck(lambda x, i, w, b: _SGEResidualFn.apply(x, i, False, w, b, 3, 1e-5), inputs,
                                    fast_mode=True)


@pytest.mark.parametrize('shape', [(3, 4, 2, 7), (1, 2, 3, 50), (5, 1, 1, 1)])
@pytest.mark.parametrize('chunk_bytes', [1, 24, 100, 1 << 30])
def test_score_chunks_cover_the_map_once(monkeypatch, shape, chunk_bytes):
    monkeypatch.setattr(fused_sge, 'SCORE_CHUNK_BYTES', chunk_bytes)
    seen = torch.zeros(shape[0], shape[3], dtype=torch.int64)
    for samples, positions in fused_sge._score_chunks(shape, 4):
        seen[samples, positions] += 1
    assert bool((seen == 1).all())


@pytest.mark.parametrize('score_chunks', ['one', 'samples', 'positions'])
@pytest.mark.parametrize('identity_fmt', [NHWC, NCHW], ids=['identity-nhwc', 'identity-nchw'])
@pytest.mark.parametrize('dtype,tol', TOLERANCES, ids=['float64', 'float32'])
def test_channels_last_inference(dtype, tol, identity_fmt, score_chunks, monkeypatch):
    """Without autograd a channels-last x is gated in channels-last (its score in chunks: the whole
    batch, one sample, or 3 of a sample's 20 positions at a time): the formula's values, the result
    channels-last, written over x with out_x."""
    layer = _layer(dtype=dtype)
    x, identity = _inputs(dtype=dtype, fmt=NHWC, offset=1.0)
    identity = identity.contiguous(memory_format=identity_fmt)
    per_position = 12 * x.element_size()
    monkeypatch.setattr(fused_sge, 'SCORE_CHUNK_BYTES',
                        {'one': 1 << 30, 'samples': 20 * per_position, 'positions': 3 * per_position}[score_chunks])
    with torch.no_grad():
        ref = _plain(layer, x, identity)
        out = sge_residual(layer, x, identity, False)
        own = x.clone(memory_format=NHWC)
        out_x = sge_residual(layer, own, identity, True)
    assert _is_nhwc(out) and out.data_ptr() != x.data_ptr() and out_x.data_ptr() == own.data_ptr()
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    torch.testing.assert_close(out_x, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize('fmt', [NCHW, NHWC], ids=['nchw', 'channels-last'])
@pytest.mark.parametrize('bn_train', [True, False], ids=['bn-train', 'bn-eval'])
def test_door_with_bn_rebuild_equals_plain(bn_train, fmt):
    """Through ``gated_residual`` with the BN output rebuilt in the backward and the result written over
    it (out_x=True): the plain values and gradients, BN parameters included."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(12).train(bn_train)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    bn_state = {k: v.clone() for k, v in bn.state_dict().items()}
    layer = _layer()
    u0, identity = _inputs(fmt=fmt, offset=3.0)
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


def test_under_autocast():
    """Under autocast (CPU bfloat16 standing in for CUDA float16) the fused form keeps x's dtype and its
    backward follows the float32 one."""
    layer = _layer()
    x, identity = _inputs()
    x32 = x.clone().requires_grad_()
    (sge_residual(layer, x32, identity, False) ** 2).sum().backward()
    xa = x.bfloat16().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = sge_residual(layer, xa, identity.bfloat16(), False)
    assert out.dtype == torch.bfloat16
    (out.float() ** 2).sum().backward()
    assert xa.grad.dtype == torch.bfloat16
    assert torch.nn.functional.cosine_similarity(xa.grad.float().flatten(), x32.grad.flatten(), dim=0) > 0.99


def test_attention_maps_are_the_gate_forward_applies():
    layer = _layer()
    x, _ = _inputs()
    gate = layer.attention_maps(x)['spatial']
    assert gate.shape == (2, 3, 4, 5)
    torch.testing.assert_close(layer(x), (x.view(2, 3, 4, 4, 5) * gate[:, :, None]).view_as(x))
    with pytest.raises(ValueError, match=r'at least 2 spatial positions'):
        sge_residual(layer, torch.randn(1, 12, 1, 1), torch.randn(1, 12, 1, 1), False)


# ----------------------------------------------------------------------------- zero spread
def _zero_spread(case):
    """float64 inputs (B=3, C=12, G=3) where some group's score is constant over H, W."""
    x, identity = _inputs((3, 12, 4, 5), torch.float64)
    if case == 'all-zero':  # zero_init_residual from scratch: the last BN outputs zeros
        x = torch.zeros_like(x)
    elif case == 'zero-groups':  # some groups of some samples
        x[0, :4] = 0
        x[2, 8:] = 0
    elif case == 'partly-zero-batch':
        x[1] = 0
    elif case == 'constant-over-space':  # each channel of a group constant over H, W, not zero
        x[0, 4:8] = torch.arange(1.0, 5.0, dtype=torch.float64)[:, None, None]
    return x, identity


ZERO_SPREAD = ['all-zero', 'zero-groups', 'partly-zero-batch', 'constant-over-space']


@pytest.mark.parametrize('case', ZERO_SPREAD)
@pytest.mark.parametrize('impl', ['plain', 'fused-nchw', 'fused-channels-last'])
def test_zero_spread_gradient_equals_the_official_expression(impl, case):
    """Where a group's score has no spread, torch's std backward passes nothing through the std: the
    official SGE is finite there, and so are the plain layer and the fused form, with its gradient."""
    layer = _layer(dtype=torch.float64)
    x, identity = _zero_spread(case)
    if impl == 'fused-channels-last':
        x, identity = (t.contiguous(memory_format=NHWC) for t in (x, identity))
    mine = _run(_plain if impl == 'plain' else _fused, layer, x, identity)
    ref = _run(_official, layer, x, identity)
    for a, b in zip(mine, ref):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('use_fused', [True, False], ids=['fused', 'plain'])
def test_from_scratch_training_step_is_finite(use_fused):
    """SGEResNet from scratch with mmdet's zero_init_residual=True (every SGE input is zero at the start):
    a training step gives finite gradients."""
    from mmattn.models import SGEResNet
    torch.manual_seed(0)
    model = SGEResNet(50, base_channels=16, groups=8, zero_init_residual=True, num_stages=2, strides=(1, 2),
                      dilations=(1, 1), out_indices=(0, 1))
    model.init_weights()
    assert all((b.norm3.weight == 0).all() for layer in (model.layer1, model.layer2) for b in layer)
    model.train()
    with fused(use_fused):
        loss = sum((o ** 2).mean() for o in model(torch.randn(2, 3, 32, 32)))
        loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) == len(list(model.parameters())) and all(torch.isfinite(g).all() for g in grads)
