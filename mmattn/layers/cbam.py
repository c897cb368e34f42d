"""Convolutional Block Attention Module (CBAM).

Woo, Park, Lee, Kweon: "CBAM: Convolutional Block Attention Module", ECCV 2018 (arXiv:1807.06521);
official code Jongchan/attention-module.

For ``x`` of shape (B, C, H, W), a channel gate then a spatial gate::

    a  = sigmoid(MLP(avgpool_{H,W}(x)) + MLP(maxpool_{H,W}(x)))     shared MLP C -> C//r -> C (biases)
    x' = x * a[:, :, None, None]
    m  = concat(max_C(x'), mean_C(x'))                                (B, 2, H, W), max FIRST (official)
    y  = x' * sigmoid(BN(conv7x7(m)))                                 conv 2 -> 1, no bias, BN momentum 0.01

Sub-module names follow the official code (``ChannelGate.mlp.{1,3}``, ``SpatialGate.spatial.{conv,bn}``)
so its checkpoints load without a converter. Official init (a key-based loop in its ResNet): the MLP
weights keep PyTorch's default, every bias is 0, the spatial conv is kaiming fan_out and the spatial BN
weight is 0, so the spatial gate starts at sigmoid(0) = 0.5.
timm's ``CbamModule`` pools [mean, max]; set ``spatial_pool_order=('mean', 'max')`` for that order.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..fused.kernels import may_overwrite, needs_grad, residual_output, same_conv, small_graph_grads, use_custom_backward
from .checks import check_positive_int, reduced_channels
from ..fused.recompute import rebuilt_in_backward

_CHANNEL_POOLS = ('avg', 'max', 'lp', 'lse')
_SPATIAL_POOLS = ('max', 'mean')


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
            s = cbam.SpatialGate.gate_from_pools(sp_in)
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


class ChannelGate(nn.Module):
    """CBAM channel gate: a shared MLP over global pools (``mlp`` = Flatten, Linear, ReLU, Linear)."""

    def __init__(self, channels: int, reduction: int, pool_types: Sequence[str]):
        super().__init__()
        hidden = reduced_channels(channels, reduction, 'CBAM')
        bad = [p for p in pool_types if p not in _CHANNEL_POOLS]
        if bad or not pool_types:
            raise ValueError(f'CBAM: pool_types={list(pool_types)!r} is invalid; use a non-empty subset '
                             f'of {_CHANNEL_POOLS} (official default: avg, max)')
        self.pool_types = tuple(pool_types)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, channels))

    @staticmethod
    def _pool(x: torch.Tensor, kind: str) -> torch.Tensor:
        if kind == 'avg':
            return x.mean((2, 3))
        if kind == 'max':
            # for backward: max with indices, like the official max_pool2d (keeps indices, not x, and
            # never compares x: the blocks rebuild x from the BN input); amax is 10x faster otherwise
            return F.adaptive_max_pool2d(x, 1).flatten(1) if needs_grad(x) else x.amax((2, 3))
        if kind == 'lp':  # L2 pool over the whole map
            return x.pow(2).sum((2, 3)).sqrt()
        return torch.logsumexp(x.flatten(2), dim=2)  # 'lse'

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, C, 1, 1) channel gate."""
        return self.gate_from_pools(torch.cat([self._pool(x, kind) for kind in self.pool_types]), x.shape[0])

    def gate_from_pools(self, pooled: torch.Tensor, batch: int) -> torch.Tensor:
        """The gate from the pools stacked along the batch dim, (len(pool_types) * B, C): one MLP call
        (same weights, same result as one call per pool)."""
        logits = self.mlp(pooled).view(len(self.pool_types), batch, -1).sum(0)
        return torch.sigmoid(logits)[:, :, None, None]

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        gate = self.gate(x)
        return x.mul_(gate) if may_overwrite(inplace, x) else x * gate


class SpatialConv(nn.Module):
    """The official ``BasicConv`` as used by the spatial gate: conv (no bias) + BN, no activation."""

    def __init__(self, kernel_size: int, bn_momentum: float):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(same_conv(x, self.conv.weight))  # == self.conv(x), with a faster input gradient


class SpatialGate(nn.Module):
    """CBAM spatial gate over channel-pooled maps."""

    def __init__(self, kernel_size: int, pool_order: Sequence[str], bn_momentum: float):
        super().__init__()
        if sorted(pool_order) != sorted(_SPATIAL_POOLS):
            raise ValueError(f'CBAM: spatial_pool_order={list(pool_order)!r} must be an ordering of '
                             f"{_SPATIAL_POOLS} (official: ('max', 'mean'); timm: ('mean', 'max'))")
        self.pool_order = tuple(pool_order)
        self.spatial = SpatialConv(kernel_size, bn_momentum)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, 1, H, W) spatial gate."""
        pools = {'max': lambda: x.amax(1, keepdim=True), 'mean': lambda: x.mean(1, keepdim=True)}
        return self.gate_from_pools(torch.cat([pools[p]() for p in self.pool_order], dim=1))

    def gate_from_pools(self, pooled: torch.Tensor) -> torch.Tensor:
        """The gate from the (B, 2, H, W) channel pools in ``pool_order``."""
        return torch.sigmoid(self.spatial(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class CBAM(nn.Module):
    """CBAM (channel then spatial gate); mmdet plugin name ``cbam``.

    Args:
        in_channels (int): C.
        reduction (int): MLP hidden width C // reduction. Default 16.
        pool_types (Sequence[str]): channel-gate pools from avg, max, lp, lse. Default ('avg', 'max').
        no_spatial (bool): drop the spatial gate. Default False.
        spatial_kernel_size (int): odd kernel of the spatial conv. Default 7.
        spatial_pool_order (Sequence[str]): order of the channel pools fed to the spatial conv.
            Default ('max', 'mean') as in the official code.
        bn_momentum (float): momentum of the spatial BN. Default 0.01 (official).
    """
    _abbr_ = 'cbam'

    def __init__(self,
                 in_channels: int,
                 reduction: int = 16,
                 pool_types: Sequence[str] = ('avg', 'max'),
                 no_spatial: bool = False,
                 spatial_kernel_size: int = 7,
                 spatial_pool_order: Sequence[str] = ('max', 'mean'),
                 bn_momentum: float = 0.01):
        super().__init__()
        check_positive_int('in_channels', in_channels, 'CBAM')
        if isinstance(spatial_kernel_size, bool) or not isinstance(spatial_kernel_size, int) \
                or spatial_kernel_size < 1 or spatial_kernel_size % 2 == 0:
            raise ValueError(f'CBAM: spatial_kernel_size must be a positive odd int, got {spatial_kernel_size!r}')
        self.in_channels = in_channels
        self.ChannelGate = ChannelGate(in_channels, reduction, pool_types)
        self.SpatialGate = None if no_spatial else SpatialGate(spatial_kernel_size, spatial_pool_order,
                                                               bn_momentum)
        self.init_weights()

    def init_weights(self) -> None:
        """Official init: MLP weights default, all biases 0, spatial conv kaiming fan_out, BN weight 0."""
        for m in (self.ChannelGate.mlp[1], self.ChannelGate.mlp[3]):
            m.reset_parameters()
            nn.init.zeros_(m.bias)
        if self.SpatialGate is not None:
            nn.init.kaiming_normal_(self.SpatialGate.spatial.conv.weight, mode='fan_out', nonlinearity='relu')
            bn = self.SpatialGate.spatial.bn
            bn.reset_running_stats()
            nn.init.zeros_(bn.weight)
            nn.init.zeros_(bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ChannelGate(x)
        return x if self.SpatialGate is None else self.SpatialGate(x)

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """``identity + self(x)``, the spatial gate and the residual add in one pass.

        ``inplace=True`` lets the result take x's memory when autograd does not need it (no grad, or
        x rebuilt in the backward: :func:`~mmattn.layers.recompute.rebuilt_in_backward`).
        """
        params = list(self.parameters())
        if self.SpatialGate is not None and use_custom_backward(x, *params) \
                and set(self.ChannelGate.pool_types) <= {'avg', 'max'}:
            # with autograd: x a is formed once and kept by nobody; dx is written once (see the Function)
            return _CBAMResidualFn.apply(x, identity, inplace and rebuilt_in_backward(x), self, *params)
        inplace = may_overwrite(inplace, x, identity)
        x = self.ChannelGate(x, inplace=inplace)
        if self.SpatialGate is None:
            return x.add_(identity) if inplace else x + identity
        return torch.addcmul(identity, x, self.SpatialGate.gate(x), out=x if inplace else None)
