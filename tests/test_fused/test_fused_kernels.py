"""The kernels of :mod:`mmattn.fused.kernels` against the straightforward torch expressions they
replace, forward and backward (float64 and float32), including inputs that break naive formulas."""
import pytest
import torch
import torch.nn.functional as F

from mmattn.fused import kernels
from mmattn.fused.kernels import chunk_slices, same_conv, scale_shift, var_mean


def _grads(fn, *inputs, seed=0):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    outs = fn(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs, )
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
    loss.backward()
    return outs, [t.grad for t in inputs]


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
    assert torch.autograd.gradcheck(same_conv, (x, w), fast_mode=True)
    with pytest.raises(ValueError, match='odd'):
        same_conv(torch.randn(1, 1, 8), torch.randn(1, 1, 4))


@pytest.mark.parametrize('chunk_bytes,rows', [(1, [1, 1, 1, 1, 1]), (2 * 6 * 4 * 4, [2, 2, 1]), (1 << 20, [5])])
def test_chunk_slices_cover_the_batch(monkeypatch, chunk_bytes, rows):
    monkeypatch.setattr(kernels, 'CHUNK_BYTES', chunk_bytes)
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
