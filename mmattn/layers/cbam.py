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
from torch import nn

from .helpers import (check_positive_int, may_overwrite, memory_format_of, needs_grad, reduced_channels,
                      use_custom_backward)

_CHANNEL_POOLS = ('avg', 'max', 'lp', 'lse')
_SPATIAL_POOLS = ('max', 'mean')


class _GatedChannelPools(torch.autograd.Function):
    """``max_C(x a)`` and ``mean_C(x a)`` (B, 1, H, W) for a channel gate ``a`` (B, C, 1, 1), keeping x,
    ``a`` and the argmax channels, not the full-size ``x a``.

    Backward, with ``c*(p)`` the argmax channel at position p: ``d(x a) = d_mean / C`` everywhere plus
    ``d_max`` at ``c*(p)``; ``dx = a d(x a)``; ``da_c = (x_c . d_mean) / C + sum_{p: c*(p) = c} d_max_p x_{c,p}``.
    """

    @staticmethod
    def forward(ctx, x, a):
        xa = x * a
        mx, idx = xa.max(1, keepdim=True)
        ctx.save_for_backward(x, a, idx)
        return mx, xa.mean(1, keepdim=True)

    @staticmethod
    def backward(ctx, d_max, d_mean):
        x, a, idx = ctx.saved_tensors
        b, c, h, w = x.shape
        d_max = torch.zeros_like(idx, dtype=x.dtype) if d_max is None else d_max
        d_mean = torch.zeros_like(idx, dtype=x.dtype) if d_mean is None else d_mean
        d_xa = (d_mean / c).expand(b, c, h, w).contiguous(memory_format=memory_format_of(x))
        d_xa.scatter_add_(1, idx, d_max)
        d_a = (x * d_mean).sum((2, 3)).div_(c)  # (a batched mat-vec product is 2x slower on CPU)
        d_a.scatter_add_(1, idx.view(b, h * w), (d_max * x.gather(1, idx)).view(b, h * w))
        return d_xa.mul_(a), d_a.view(a.shape)


class _GatedResidual(torch.autograd.Function):
    """``identity + x a s`` for gates ``a`` (B, C, 1, 1) and ``s`` (B, 1, H, W), keeping x, a, s only.

    Backward, with ``u = g x``: ``ds = sum_c a_c u_c`` (a batched vector-matrix product),
    ``da = sum_p s_p u_p``, ``dx = g s a`` (written into u's memory), ``d identity = g``.
    """

    @staticmethod
    def forward(ctx, x, a, s, identity):
        ctx.save_for_backward(x, a, s)
        out = x * a
        return torch.addcmul(identity, out, s, out=out)

    @staticmethod
    def backward(ctx, grad):
        x, a, s = ctx.saved_tensors
        b, c, h, w = x.shape
        u = grad * x
        d_s = torch.matmul(a.reshape(b, 1, c), u.flatten(2)).view(s.shape)
        d_a = (u * s).sum((2, 3), keepdim=True)  # (a batched mat-vec product is 2x slower on CPU)
        return torch.mul(grad, s, out=u).mul_(a), d_a, d_s, grad


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
            return x.flatten(2).max(2).values if needs_grad(x) else x.amax((2, 3))
        if kind == 'lp':  # L2 pool over the whole map
            return x.pow(2).sum((2, 3)).sqrt()
        return torch.logsumexp(x.flatten(2), dim=2)  # 'lse'

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, C, 1, 1) channel gate."""
        # one MLP call over the stacked pools (same weights, same result as one call per pool)
        pooled = torch.cat([self._pool(x, kind) for kind in self.pool_types])
        logits = self.mlp(pooled).view(len(self.pool_types), *x.shape[:2]).sum(0)
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
        return self.bn(self.conv(x))


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
        pooled = torch.cat([pools[p]() for p in self.pool_order], dim=1)
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

        ``inplace=True`` lets the result take x's memory when autograd does not need x.
        """
        if self.SpatialGate is not None and use_custom_backward(x):
            # with autograd: the channel-gated map x * a is never kept (nor written twice), see the Functions
            a = self.ChannelGate.gate(x)
            pools = dict(zip(('max', 'mean'), _GatedChannelPools.apply(x, a)))
            spatial = self.SpatialGate
            s = torch.sigmoid(spatial.spatial(torch.cat([pools[p] for p in spatial.pool_order], dim=1)))
            return _GatedResidual.apply(x, a, s, identity)
        inplace = may_overwrite(inplace, x, identity)
        x = self.ChannelGate(x, inplace=inplace)
        if self.SpatialGate is None:
            return x.add_(identity) if inplace else x + identity
        return torch.addcmul(identity, x, self.SpatialGate.gate(x), out=x if inplace else None)
