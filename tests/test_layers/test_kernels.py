"""The fast kernels of ``mmattn.layers.helpers`` against the straightforward torch expressions they
replace, forward and backward (float64 and float32), including the inputs that break naive formulas."""
import pytest
import torch

from mmattn.layers.helpers import may_overwrite, sigmoid_affine_gate, var_mean


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


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_sigmoid_affine_gate_equals_plain_expression(dtype, tol):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 2, 4, 5, 6, dtype=dtype)
    a = torch.randn(2, 3, 2, 4, 1, 1, dtype=dtype)
    b = torch.randn(1, 1, 2, 4, 1, 1, dtype=dtype)  # broadcast over batch and groups too
    mine, g_mine = _grads(sigmoid_affine_gate, x, a, b)
    ref, g_ref = _grads(lambda x, a, b: x * torch.sigmoid(a * x + b), x, a, b)
    torch.testing.assert_close(mine[0], ref[0], rtol=tol, atol=tol)
    for gm, gr in zip(g_mine, g_ref):
        assert gm.shape == gr.shape
        torch.testing.assert_close(gm, gr, rtol=tol, atol=tol)
    with torch.no_grad():
        torch.testing.assert_close(sigmoid_affine_gate(x, a, b), ref[0].detach(), rtol=tol, atol=tol)


def test_sigmoid_affine_gate_keeps_one_feature_map_for_backward():
    """Autograd keeps x (and the small a, b) only, not the full-size sigmoid."""
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    a = torch.randn(2, 8, 1, 1, requires_grad=True)
    b = torch.randn(2, 8, 1, 1, requires_grad=True)

    def saved_numel(fn):
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            fn()
        return sum(s for s in sizes if s == x.numel())

    assert saved_numel(lambda: sigmoid_affine_gate(x, a, b)) == x.numel()
    assert saved_numel(lambda: x * torch.sigmoid(a * x + b)) >= 2 * x.numel()


def test_may_overwrite():
    t = torch.randn(2)
    r = torch.randn(2, requires_grad=True)
    assert may_overwrite(True, t) and not may_overwrite(False, t)
    assert not may_overwrite(True, t, r)
    with torch.no_grad():
        assert may_overwrite(True, t, r)
