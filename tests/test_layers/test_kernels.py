"""The fast kernels of ``mmattn.layers.helpers`` against the straightforward torch expressions they
replace, forward and backward (float64 and float32), including the inputs that break naive formulas."""
import pytest
import torch

from mmattn.fused import kernels as helpers
from mmattn.fused.kernels import (ChannelGateResidual, chunk_slices, may_overwrite, same_conv, scale_shift,
                                   var_mean)
from mmattn.layers.cbam import CBAM
from mmattn.layers import sge as sge_module
from mmattn.layers.sge import SpatialGroupEnhance, _SGEResidualFn
from mmattn.layers.shuffle_attention import (ShuffleAttention, _sa_coefficients, _sa_residual,
                                             _SAResidualChannelsLastFn, _SAResidualFn)


def _grads(fn, *inputs, seed=0):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    outs = fn(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs, )
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
    loss.backward()
    return outs, [t.grad for t in inputs]


def _nhwc(*tensors):
    return tuple(t.contiguous(memory_format=torch.channels_last) for t in tensors)


def _is_nhwc(t):
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize('dims,correction', [((2, 3), 0), ((2, ), 1), ((-1, ), 0)])
def test_var_mean_equals_torch(dtype, tol, dims, correction):
    torch.manual_seed(0)
    # large offset relative to the spread: E[x^2] - E[x]^2 would lose ~6 digits here in float32
    x = torch.randn(3, 5, 6, 7, dtype=dtype) * 0.5 + 40.0
    mine, g_mine = _grads(lambda t: var_mean(t, dims, correction), x)
    ref, g_ref = _grads(lambda t: torch.var_mean(t, dims, correction=correction, keepdim=True), x)
    for a, b in zip(mine, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * 40)
    torch.testing.assert_close(g_mine[0], g_ref[0], rtol=tol, atol=tol)


def test_var_mean_strided_view_and_single_output_gradient():
    x = torch.randn(2, 4, 2, 3, 5, 5, dtype=torch.float64)
    view = lambda t: t[:, :, 1]  # noqa: E731  (the SA spatial half: a non-contiguous view)
    mine, g_mine = _grads(lambda t: var_mean(view(t), (3, 4))[0], x)
    ref, g_ref = _grads(lambda t: torch.var_mean(view(t), (3, 4), correction=0, keepdim=True)[0], x)
    torch.testing.assert_close(mine[0], ref[0])
    torch.testing.assert_close(g_mine[0], g_ref[0])
    assert g_mine[0][:, :, 0].abs().sum() == 0


def test_var_mean_refuses_too_few_elements():
    with pytest.raises(ValueError, match='correction=1'):
        var_mean(torch.randn(2, 3, 1, 1), (2, 3), correction=1)


@pytest.mark.parametrize('shape,weight_shape', [((2, 2, 9, 8), (1, 2, 7, 7)), ((3, 1, 16), (1, 1, 5)),
                                                  ((2, 3, 5, 6), (2, 3, 3, 5))], ids=['cbam', 'eca', 'general'])
@pytest.mark.parametrize('channels_last', [False, True])
def test_same_conv_equals_conv(shape, weight_shape, channels_last):
    """Forward, input and weight gradients == F.conv with padding k // 2 (float64 and float32)."""
    import torch.nn.functional as F
    conv = {3: F.conv1d, 4: F.conv2d}[len(shape)]
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        torch.manual_seed(0)
        x, w = torch.randn(shape, dtype=dtype), torch.randn(weight_shape, dtype=dtype)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        (y1, ), g1 = _grads(same_conv, x, w)
        (y2, ), g2 = _grads(lambda x, w: conv(x, w, padding=[k // 2 for k in w.shape[2:]]), x, w)
        for a, b in zip((y1, *g1), (y2, *g2)):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    x, w = x.double().requires_grad_(), w.double().requires_grad_()
    assert torch.autograd.gradcheck(same_conv, (x, w))
    with pytest.raises(ValueError, match='odd'):
        same_conv(torch.randn(1, 1, 8), torch.randn(1, 1, 4))


def _plain_sa_residual(x, identity, groups, eps, *params):
    """identity + SA(x) by autograd of the plain expressions (no custom backward)."""
    cw, cb, sw, sb, gw, gb = params
    b, c, h, w = x.shape
    x6 = x.view(b, groups, 2, c // (2 * groups), h, w)
    x0, x1 = x6[:, :, 0], x6[:, :, 1]
    y0 = x0 * torch.sigmoid(cw * x0.mean((3, 4), keepdim=True) + cb)
    var, mean = torch.var_mean(x1, (3, 4), correction=0, keepdim=True)
    y1 = x1 * torch.sigmoid(sw * (gw * (x1 - mean) / torch.sqrt(var + eps) + gb) + sb)
    gated = torch.stack((y0, y1), 2).view(b, 2, c // 2, h, w)
    return identity + gated.transpose(1, 2).reshape(b, c, h, w)


def _sa_inputs(dtype, shape=(2, 24, 5, 6), groups=4):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=dtype) * 1.5 + 0.5
    identity = torch.randn(*shape, dtype=dtype)
    params = tuple(torch.randn(shape[1] // (2 * groups), 1, 1, dtype=dtype) for _ in range(6))
    return x, identity, params


def test_shuffle_attention_backward_passes_gradcheck(chunking):
    x, identity, params = _sa_inputs(torch.float64, (2, 12, 4, 3), groups=2)
    inputs = [t.requires_grad_() for t in (x, identity) + params]
    assert torch.autograd.gradcheck(lambda x, i, *p: _SAResidualFn.apply(x, i, False, 2, 1e-5, *p), inputs)


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_shuffle_attention_equals_plain_autograd(dtype, tol, channels_last, chunking):
    x, identity, params = _sa_inputs(dtype)
    if channels_last:
        x, identity = (t.contiguous(memory_format=torch.channels_last) for t in (x, identity))
    mine, g_mine = _grads(lambda x, i, *p: _SAResidualFn.apply(x, i, False, 4, 1e-5, *p), x, identity, *params)
    ref, g_ref = _grads(lambda x, i, *p: _plain_sa_residual(x, i, 4, 1e-5, *p), x, identity, *params)
    torch.testing.assert_close(mine[0], ref[0], rtol=tol, atol=tol)
    for gm, gr in zip(g_mine, g_ref):
        assert gm.shape == gr.shape
        torch.testing.assert_close(gm, gr, rtol=tol * 10, atol=tol * 10)
    b, c, h, w = x.shape
    coefficients = _sa_coefficients(x.view(b, 4, 2, -1, h, w), params, 1e-5)[:3]
    no_grad = _sa_residual(x, identity, 4, coefficients, torch.empty_like(identity))
    torch.testing.assert_close(no_grad, ref[0].detach(), rtol=tol, atol=tol)


def _sa_channels_last_fn(groups, own_x=False):
    return lambda x, i, *p: _SAResidualChannelsLastFn.apply(x, i, own_x, groups, 1e-5, *p)


@pytest.mark.parametrize('groups', [2, 3], ids=['even-groups', 'odd-groups'])
def test_shuffle_attention_channels_last_backward_passes_gradcheck(groups, chunking):
    x, identity, params = _sa_inputs(torch.float64, (2, 12, 4, 3), groups=groups)
    inputs = [t.requires_grad_() for t in (x.contiguous(memory_format=torch.channels_last), identity) + params]
    assert torch.autograd.gradcheck(_sa_channels_last_fn(groups), inputs)


@pytest.mark.parametrize('groups', [4, 3], ids=['even-groups', 'odd-groups'])
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_shuffle_attention_channels_last_training_equals_plain_autograd(dtype, tol, groups, chunking):
    """With autograd a channels-last x is computed in the output's channel order and the backward
    unshuffles dx: the plain formula's values and gradients, results and dx channels-last; through
    ``forward_residual`` too."""
    x, identity, params = _sa_inputs(dtype, groups=groups)
    x, identity = (t.contiguous(memory_format=torch.channels_last) for t in (x, identity))
    mine, g_mine = _grads(_sa_channels_last_fn(groups), x, identity, *params)
    ref, g_ref = _grads(lambda x, i, *p: _plain_sa_residual(x.contiguous(), i, groups, 1e-5, *p),
                        x, identity, *params)
    torch.testing.assert_close(mine[0], ref[0], rtol=tol, atol=tol)
    for gm, gr in zip(g_mine, g_ref):
        assert gm.shape == gr.shape
        torch.testing.assert_close(gm, gr, rtol=tol * 10, atol=tol * 10)
    assert _is_nhwc(mine[0]) and _is_nhwc(g_mine[0])
    sa = ShuffleAttention(24, groups=groups).to(dtype)
    with torch.no_grad():
        for p, value in zip(sa._params(24 // (2 * groups)), params):
            p.copy_(value)
    out = sa.forward_residual(x.clone().requires_grad_(), identity)
    assert out.grad_fn.name() == '_SAResidualChannelsLastFnBackward'
    torch.testing.assert_close(out, ref[0], rtol=tol, atol=tol)


@pytest.mark.parametrize('groups', [4, 3], ids=['even-groups', 'odd-groups'])
@pytest.mark.parametrize('identity_nhwc', [True, False], ids=['identity-nhwc', 'identity-nchw'])
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_shuffle_attention_channels_last_inference(dtype, tol, identity_nhwc, groups):
    """Without autograd a channels-last x is shuffled first and gated in the output's channel order:
    same values as the plain expressions, and the result stays channels-last."""
    torch.manual_seed(0)
    sa = ShuffleAttention(24, groups=groups).to(dtype)
    with torch.no_grad():
        for p in sa.parameters():
            p.normal_()
    x = (torch.randn(2, 24, 5, 6, dtype=dtype) * 1.5 + 3.0).contiguous(memory_format=torch.channels_last)
    identity = torch.randn(2, 24, 5, 6, dtype=dtype)
    if identity_nhwc:
        identity = identity.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        params = sa._params(24 // (2 * groups))
        ref = _plain_sa_residual(x.contiguous(), identity.contiguous(), groups, sa.gn.eps, *params)
        out = sa.forward_residual(x, identity)
        own = x.clone(memory_format=torch.channels_last)
        out_inplace = sa.forward_residual(own, identity, inplace=True)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    torch.testing.assert_close(out_inplace, ref, rtol=tol, atol=tol)
    assert out_inplace.data_ptr() == own.data_ptr() and out.data_ptr() != x.data_ptr()
    with torch.inference_mode():
        torch.testing.assert_close(sa.forward_residual(x, identity), ref, rtol=tol, atol=tol)


def test_shuffle_attention_channels_last_reduced_precision_takes_the_nchw_path():
    """bfloat16 has no complex type on CPU: the channels-last kernel is not used, and the result is
    still the formula's (in NCHW)."""
    torch.manual_seed(0)
    sa = ShuffleAttention(24, groups=4)
    x = torch.randn(2, 24, 5, 6).contiguous(memory_format=torch.channels_last)
    identity = torch.randn(2, 24, 5, 6)
    with torch.no_grad():
        out = sa.forward_residual(x.bfloat16(), identity.bfloat16())
        ref = sa.forward_residual(x, identity)
    assert out.dtype == torch.bfloat16 and out.is_contiguous()
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)


def test_shuffle_attention_keeps_one_feature_map_for_backward():
    """Autograd keeps x (and per-channel values) only: not the full-size sigmoid, not a copy."""
    x, identity, params = _sa_inputs(torch.float32, (2, 16, 16, 16), groups=4)
    inputs = [t.requires_grad_() for t in (x, identity) + params]

    def saved_numel(fn):
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            fn()
        return sum(s for s in sizes if s >= x.numel() // 2)

    assert saved_numel(lambda: _SAResidualFn.apply(inputs[0], inputs[1], False, 4, 1e-5, *inputs[2:])) == x.numel()
    x_nhwc = inputs[0].contiguous(memory_format=torch.channels_last)  # x itself, not the shuffled map
    assert saved_numel(lambda: _sa_channels_last_fn(4)(x_nhwc, inputs[1], *inputs[2:])) == x.numel()
    assert saved_numel(lambda: _plain_sa_residual(inputs[0], inputs[1], 4, 1e-5, *inputs[2:])) >= 2 * x.numel()


def _plain_sge_residual(x, identity, weight, bias, groups, eps):
    b, c, h, w = x.shape
    xg = x.view(b, groups, c // groups, h * w)
    score = (xg * xg.mean(3, keepdim=True)).sum(2, keepdim=True)
    t = (score - score.mean(3, keepdim=True)) / (score.std(3, keepdim=True) + eps)
    return identity + (xg * torch.sigmoid(t * weight + bias)).view(b, c, h, w)


def _sge_inputs(dtype, shape=(2, 12, 4, 5), groups=3):
    torch.manual_seed(0)
    x, identity = torch.randn(*shape, dtype=dtype), torch.randn(*shape, dtype=dtype)
    weight, bias = torch.randn(1, groups, 1, 1, dtype=dtype), torch.randn(1, groups, 1, 1, dtype=dtype)
    return x, identity, weight, bias


@pytest.mark.parametrize('channels_last', [False, True])
def test_sge_backward_passes_gradcheck(channels_last):
    x, identity, weight, bias = _sge_inputs(torch.float64)
    if channels_last:
        x, identity = _nhwc(x, identity)
    inputs = [t.requires_grad_() for t in (x, identity, weight, bias)]
    assert torch.autograd.gradcheck(lambda *t: _SGEResidualFn.apply(t[0], t[1], False, *t[2:], 3, 1e-5), inputs)


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('offset', [0.0, 2.0], ids=['centred', 'offset'])  # offset: score mean >> its std
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_sge_equals_plain_autograd(dtype, tol, offset, channels_last, chunking):
    """NCHW and channels-last (NHWC kernels, chunked score): the plain formula's values and gradients,
    and a channels-last input gives channels-last results and input gradients."""
    inputs = _sge_inputs(dtype)
    inputs = (inputs[0] + offset, ) + inputs[1:]
    if channels_last:
        inputs = _nhwc(*inputs[:2]) + inputs[2:]
    mine, g_mine = _grads(lambda *t: _SGEResidualFn.apply(t[0], t[1], False, *t[2:], 3, 1e-5), *inputs)
    ref, g_ref = _grads(lambda *t: _plain_sge_residual(t[0].contiguous(), *t[1:], 3, 1e-5), *inputs)
    torch.testing.assert_close(mine[0], ref[0], rtol=tol, atol=tol)
    for gm, gr in zip(g_mine, g_ref):
        assert gm.shape == gr.shape
        torch.testing.assert_close(gm, gr, rtol=tol * 10, atol=tol * 10)
    assert all(_is_nhwc(t) == channels_last for t in (mine[0], g_mine[0]))


@pytest.mark.parametrize('shape', [(3, 4, 2, 7), (1, 2, 3, 50), (5, 1, 1, 1)])
@pytest.mark.parametrize('chunk_bytes', [1, 24, 100, 1 << 30])
def test_sge_score_chunks_cover_the_map_once(monkeypatch, shape, chunk_bytes):
    monkeypatch.setattr(sge_module, 'SCORE_CHUNK_BYTES', chunk_bytes)
    seen = torch.zeros(shape[0], shape[3], dtype=torch.int64)
    for samples, positions in sge_module._score_chunks(shape, 4):
        seen[samples, positions] += 1
    assert bool((seen == 1).all())


@pytest.mark.parametrize('score_chunks', ['one', 'samples', 'positions'])
@pytest.mark.parametrize('identity_nhwc', [True, False], ids=['identity-nhwc', 'identity-nchw'])
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_sge_channels_last_inference(dtype, tol, identity_nhwc, score_chunks, monkeypatch):
    """Without autograd a channels-last x is gated in channels-last (its score in chunks: the whole
    batch, one sample, or 3 of a sample's 20 positions at a time): the formula's values, the result
    channels-last, written over x when asked; ``forward`` alike."""
    torch.manual_seed(0)
    sge = SpatialGroupEnhance(12, groups=3).to(dtype)
    with torch.no_grad():
        sge.weight.normal_()
        sge.bias.normal_()
    x, identity, _, _ = _sge_inputs(dtype)
    per_position = 12 * x.element_size()
    monkeypatch.setattr(sge_module, 'SCORE_CHUNK_BYTES',
                        {'one': 1 << 30, 'samples': 20 * per_position, 'positions': 3 * per_position}[score_chunks])
    x, = _nhwc(x + 1.0)
    if identity_nhwc:
        identity, = _nhwc(identity)
    with torch.no_grad():
        ref = _plain_sge_residual(x.contiguous(), identity, sge.weight, sge.bias, 3, sge.eps)
        out = sge.forward_residual(x, identity)
        own = x.clone(memory_format=torch.channels_last)
        out_inplace = sge.forward_residual(own, identity, inplace=True)
        alone = sge(x)
    assert _is_nhwc(out) and out.data_ptr() != x.data_ptr()
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    torch.testing.assert_close(out_inplace, ref, rtol=tol, atol=tol)
    assert out_inplace.data_ptr() == own.data_ptr()
    torch.testing.assert_close(alone + identity, ref, rtol=tol, atol=tol)


def _cbam(dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    layer = CBAM(16, reduction=4, **kwargs).to(dtype)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + 0.1)
    return layer


def _plain_cbam_residual(layer, x, identity):
    """identity + CBAM(x) by autograd of the plain expressions (no custom backward)."""
    ch = layer.ChannelGate
    pools = {'avg': x.mean((2, 3)), 'max': x.flatten(2).max(2).values}
    logits = sum(ch.mlp(pools[k]) for k in ch.pool_types)
    xa = x * torch.sigmoid(logits)[:, :, None, None]
    sp = {'max': xa.max(1, keepdim=True).values, 'mean': xa.mean(1, keepdim=True)}
    s = torch.sigmoid(layer.SpatialGate.spatial(torch.cat([sp[k] for k in layer.SpatialGate.pool_order], 1)))
    return identity + xa * s


@pytest.mark.parametrize('train', [False, True], ids=['bn_eval', 'bn_train'])
@pytest.mark.parametrize('channels_last', [False, True])
def test_cbam_backward_passes_gradcheck(channels_last, train):
    layer = _cbam(torch.float64).train(train)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 16, 3, 4, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    identity = torch.randn(2, 16, 3, 4, dtype=torch.float64, requires_grad=True)
    params = tuple(layer.parameters())
    fn = lambda x, identity, *p: layer.forward_residual(x, identity)  # noqa: E731 (params as inputs)
    assert torch.autograd.gradcheck(fn, (x, identity) + params)


@pytest.mark.parametrize('kwargs', [{}, dict(pool_types=('max', 'avg'), spatial_pool_order=('mean', 'max')),
                                    dict(pool_types=('avg', )), dict(pool_types=('max', ))],
                         ids=['official', 'timm-order', 'avg-only', 'max-only'])
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_cbam_equals_plain_autograd(dtype, tol, kwargs):
    """Fused forward/backward == autograd of the plain expressions: output, input and parameter
    gradients, and (train mode) the spatial BN's running statistics, updated once."""
    fused, plain = _cbam(dtype, **kwargs).train(), _cbam(dtype, **kwargs).train()
    x = torch.randn(3, 16, 6, 5, dtype=dtype)
    identity = torch.randn(3, 16, 6, 5, dtype=dtype)
    (y1, ), g1 = _grads(lambda x, i: fused.forward_residual(x, i), x, identity)
    (y2, ), g2 = _grads(lambda x, i: _plain_cbam_residual(plain, x, i), x, identity)
    torch.testing.assert_close(y1, y2, rtol=tol, atol=tol)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=tol, atol=tol, msg=name)
    for (name, b1), b2 in zip(fused.named_buffers(), plain.buffers()):
        torch.testing.assert_close(b1, b2, rtol=tol, atol=tol, msg=name)


def test_cbam_keeps_no_gated_map_for_backward():
    from mmattn.layers import CBAM
    layer = CBAM(32, reduction=4)
    x = torch.randn(2, 32, 8, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append((t.numel(), t.data_ptr())) or t,
                                                  lambda t: t):
        layer.forward_residual(x, torch.randn(2, 32, 8, 8))
    # full-size: x itself only (by the two Functions); everything else is small
    assert {ptr for n, ptr in saved if n == x.numel()} == {x.data_ptr()}
    assert sum(n for n, _ in saved if n < x.numel()) < x.numel()


@pytest.mark.parametrize('name', ['se', 'se-nobias', 'eca'])
def test_channel_gate_residual_passes_gradcheck(name):
    from mmattn.layers import ECAModule, SEModule
    torch.manual_seed(0)
    layer = {'se': lambda: SEModule(8, reduction=2), 'se-nobias': lambda: SEModule(8, reduction=2, bias=False),
             'eca': lambda: ECAModule(8, kernel_size=3)}[name]().double()
    params = {'se': lambda: (layer.fc[0].weight, layer.fc[0].bias, layer.fc[2].weight, layer.fc[2].bias),
              'eca': lambda: (layer.conv.weight, )}[name.split('-')[0]]()
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64, requires_grad=True)
    identity = torch.randn(2, 8, 3, 4, dtype=torch.float64, requires_grad=True)
    tensors = [p for p in params if p is not None]

    def fn(x, identity, *ps):
        it = iter(ps)
        full = [next(it) if p is not None else None for p in params]
        return ChannelGateResidual.apply(x, identity, False, layer._gate_fn, *full)

    assert torch.autograd.gradcheck(fn, [x, identity] + tensors)
    torch.testing.assert_close(fn(x, identity, *tensors), identity + layer(x))


def test_may_overwrite():
    t = torch.randn(2)
    r = torch.randn(2, requires_grad=True)
    assert may_overwrite(True, t) and not may_overwrite(False, t)
    assert not may_overwrite(True, t, r)
    with torch.no_grad():
        assert may_overwrite(True, t, r)


@pytest.mark.parametrize('chunk_bytes,rows', [(1, [1, 1, 1, 1, 1]), (2 * 6 * 4 * 4, [2, 2, 1]), (1 << 20, [5])])
def test_chunk_slices_cover_the_batch(monkeypatch, chunk_bytes, rows):
    monkeypatch.setattr(helpers, 'CHUNK_BYTES', chunk_bytes)
    t = torch.randn(5, 6, 2, 2)
    slices = chunk_slices(t)
    assert [s.stop - s.start for s in slices] == rows
    assert torch.equal(torch.cat([t[s] for s in slices]), t)
    assert chunk_slices(t[:0]) == [slice(0, 0)]  # one (empty) chunk: the backwards still run


@pytest.mark.parametrize('case', ['nchw', 'per-sample', 'nhwc', 'broadcast-t', 'in-place', 'no-out'])
def test_scale_shift_equals_the_expression(case, monkeypatch):
    """t * scale + shift on both paths: two vectorised passes where the coefficients are constant along
    the innermost memory dim (NCHW per-channel), addcmul elsewhere (NHWC), with and without ``out``."""
    calls = []
    real_addcmul = torch.addcmul
    monkeypatch.setattr(torch, 'addcmul', lambda *a, **k: calls.append(1) or real_addcmul(*a, **k))
    g = torch.Generator().manual_seed(0)
    t = torch.randn(3, 5, 4, 6, generator=g, dtype=torch.float64)
    scale, shift = torch.randn(1, 5, 1, 1, generator=g, dtype=torch.float64), torch.randn(3, 5, 1, 1, generator=g,
                                                                                         dtype=torch.float64)
    if case == 'per-sample':
        scale = torch.randn(3, 5, 1, 1, generator=g, dtype=torch.float64)
    if case == 'nhwc':
        t = t.contiguous(memory_format=torch.channels_last)
    if case == 'broadcast-t':  # a (B, 1, H, W) map against per-channel coefficients: a full-size result
        t = t[:, :1]
    expected = t * scale + shift
    out = torch.empty_like(expected) if case != 'nhwc' else torch.empty_like(t)
    if case == 'in-place':
        out = t.clone()
        result = scale_shift(out, scale, shift, out=out)
    elif case == 'no-out':
        result = scale_shift(t, scale, shift)
    else:
        result = scale_shift(t, scale, shift, out=out)
    if case != 'no-out':
        assert result.data_ptr() == out.data_ptr()
    torch.testing.assert_close(result, expected, rtol=1e-12, atol=1e-12)
    assert bool(calls) is (case == 'nhwc')  # the scalar-loop addcmul only where it is vectorised


def test_shuffle_attention_backward_on_an_empty_batch():
    x, identity, params = _sa_inputs(torch.float32, (0, 24, 5, 6))
    inputs = [t.requires_grad_() for t in (x, identity) + params]
    _SAResidualFn.apply(inputs[0], inputs[1], False, 4, 1e-5, *inputs[2:]).sum().backward()
    assert inputs[0].grad.shape == x.shape and all((p.grad == 0).all() for p in inputs[2:])
