"""Fused ``identity + CBAM(x)``: with autograd one Function that keeps only x and writes dx once;
without it the two gates and the add write over x when allowed.
"""
import torch
import torch.nn.functional as F

from ..layers.cbam import CBAM, SpatialGate
from . import register_fused_residual
from .kernels import needs_grad, residual_output, same_conv, small_graph_grads


def _spatial_gate(gate: SpatialGate, pooled: torch.Tensor) -> torch.Tensor:
    """``gate.gate_from_pools(pooled)`` with the 7x7 conv's input gradient as a forward convolution
    (:func:`~mmattn.fused.kernels.same_conv`)."""
    spatial = gate.spatial
    return torch.sigmoid(spatial.bn(same_conv(pooled, spatial.conv.weight)))


class _CBAMResidualFn(torch.autograd.Function):
    """``identity + CBAM(x)`` with a backward that writes dx once and keeps no full-size map but x.

    Forward: ``a = sigmoid(sum_k MLP(pool_k(x)))`` over the pools avg / max of H, W (max with its argmax
    ``p*(c)``); ``x a`` is formed once, pooled over C (max with its argmax ``c*(p)``, mean) and then holds
    the output ``identity + x a s`` with ``s = sigmoid(BN(conv(pools)))``. The two small networks (MLP;
    conv + BN) run with autograd on detached inputs; their graphs are kept (small tensors only) and
    differentiated in the backward, so a train-mode BN updates its running statistics once.

    Backward, with ``g`` the output gradient, ``N = H W``, sums over p = (h, w) or c::

        ds      = sum_c a_c g_c x_c                    -> spatial net -> d_max_C, d_mean_C (B, 1, H, W)
        da_c    = sum_p g x s + sum_p x_c d_mean_C / C + sum_{p: c*(p) = c} x_c d_max_C
                                                       -> MLP -> d_avg, d_max_HW (B, C)
        dx      = a (g s + d_mean_C / C) + d_avg / N + [c = c*(p)] a_c d_max_C + [p = p*(c)] d_max_HW
        d identity = g

    Apply as ``_CBAMResidualFn.apply(x, identity, own_x, cbam, *cbam.parameters())`` (MLP, spatial
    conv and BN; those that require grad get their gradients); ``own_x``: x a and then the output are
    written over x (see ``residual_output``). Channel pools: a subset of avg, max.
    """

    @staticmethod
    def forward(ctx, x, identity, own_x, cbam, *params):
        b, c, h, w = x.shape
        pool_types, idx_hw = cbam.ChannelGate.pool_types, None
        pools = {'avg': x.mean((2, 3))} if 'avg' in pool_types else {}
        if 'max' in pool_types:
            pools['max'], idx_hw = (t.flatten(1) for t in F.adaptive_max_pool2d(x, 1, return_indices=True))
        with torch.enable_grad():
            pooled = torch.cat([pools[k] for k in pool_types]).requires_grad_()
            a = cbam.ChannelGate.gate_from_pools(pooled, b)
        a_x = a.detach().to(x.dtype)  # (under autocast the small networks may run in another precision)
        xa = torch.mul(x, a_x, out=residual_output(ctx, x, own_x))
        mx_c, idx_c = xa.max(1, keepdim=True)
        spatial = {'max': mx_c, 'mean': xa.mean(1, keepdim=True)}
        with torch.enable_grad():
            sp_in = torch.cat([spatial[k] for k in cbam.SpatialGate.pool_order], dim=1).requires_grad_()
            s = _spatial_gate(cbam.SpatialGate, sp_in)
        s_x = s.detach().to(x.dtype)
        ctx.save_for_backward(x, a_x, s_x, idx_c, idx_hw)
        ctx.graphs = (pooled, a, sp_in, s)
        ctx.pool_types, ctx.pool_order, ctx.params = pool_types, cbam.SpatialGate.pool_order, params
        return torch.addcmul(identity, xa, s_x, out=xa)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, a, s, idx_c, idx_hw = ctx.saved_tensors
        pooled, a_graph, sp_in, s_graph = ctx.graphs
        b, c, h, w = x.shape
        # one full-size buffer in x's layout: g x, then g x s, then x d_mean_C, then dx
        buf = torch.mul(grad, x, out=torch.empty_like(x))
        d_s = torch.matmul(a.reshape(b, 1, c), buf.flatten(2)).view(s.shape)
        d_a = buf.mul_(s).sum((2, 3))  # (a batched mat-vec product is 2x slower on CPU than mul + sum)
        # spatial network, then the channel pools of x a
        (d_sp_in, ), d_params_sp = small_graph_grads(s_graph, [sp_in], ctx.params, d_s)
        d_pool = dict(zip(ctx.pool_order, d_sp_in.split(1, dim=1)))
        d_mean_c = d_pool['mean'] / c
        d_a += torch.mul(x, d_mean_c, out=buf).sum((2, 3))
        d_a.scatter_add_(1, idx_c.view(b, h * w), (d_pool['max'] * x.gather(1, idx_c)).view(b, h * w))
        # MLP, then the channel pools of x
        (d_pooled, ), d_params_ch = small_graph_grads(a_graph, [pooled], ctx.params, d_a.view(a_graph.shape))
        d_pools = dict(zip(ctx.pool_types, d_pooled.view(len(ctx.pool_types), b, c)))
        grad_x = torch.addcmul(d_mean_c, grad, s, out=buf)
        shift = d_pools['avg'][:, :, None, None] / (h * w) if 'avg' in d_pools else torch.zeros_like(a)
        torch.addcmul(shift, grad_x, a, out=grad_x)
        a_at_max = a.view(b, c).gather(1, idx_c.view(b, h * w)).view(idx_c.shape)
        grad_x.scatter_add_(1, idx_c, d_pool['max'] * a_at_max)
        if 'max' in d_pools:
            grad_x.flatten(2).scatter_add_(2, idx_hw[:, :, None], d_pools['max'][:, :, None])
        # every parameter belongs to one of the two networks
        d_params = [dc if ds is None else ds for ds, dc in zip(d_params_sp, d_params_ch)]
        return (grad_x, grad, None, None, *d_params)


def _keep(t):
    return t


def cbam_residual(cbam: CBAM, x: torch.Tensor, identity: torch.Tensor, out_x: bool) -> torch.Tensor:
    """``identity + cbam(x)``."""
    params = list(cbam.parameters())
    if needs_grad(x, identity, *params):
        if cbam.SpatialGate is not None and set(cbam.ChannelGate.pool_types) <= {'avg', 'max'}:
            return _CBAMResidualFn.apply(x, identity, out_x, cbam, *params)
        # lp/lse pools or no spatial gate: the plain formula. Inside the door's BN-output rebuild (out_x)
        # it keeps x itself: amax's backward finds the maxima by equality with x, which a rebuilt x need
        # not meet bitwise (no element equal -> 0 / 0 = NaN gradients).
        if out_x:
            with torch.autograd.graph.saved_tensors_hooks(_keep, _keep):
                return identity + cbam(x)
        return identity + cbam(x)
    xa = torch.mul(x, cbam.ChannelGate.gate(x), out=x if out_x else None)
    if cbam.SpatialGate is None:
        return xa.add_(identity)
    return torch.addcmul(identity, xa, cbam.SpatialGate.gate(xa), out=xa)


register_fused_residual(CBAM, cbam_residual)
