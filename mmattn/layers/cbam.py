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
The official code also offers 'lp' and 'lse' channel pools (L2 and log-sum-exp over H, W).
"""
from typing import Sequence

import torch
from torch import nn

from .checks import check_positive_int, reduced_channels

_CHANNEL_POOLS = ('avg', 'max', 'lp', 'lse')
_SPATIAL_POOLS = ('max', 'mean')


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
    def pool(x: torch.Tensor, kind: str) -> torch.Tensor:
        """Pool ``kind`` of x over H, W: (B, C)."""
        if kind == 'avg':
            return x.mean((2, 3))
        if kind == 'max':
            return x.amax((2, 3))
        if kind == 'lp':  # L2 pool over the whole map
            return x.pow(2).sum((2, 3)).sqrt()
        return torch.logsumexp(x.flatten(2), dim=2)  # 'lse'

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, C, 1, 1) channel gate a."""
        return self.gate_from_pools(torch.cat([self.pool(x, kind) for kind in self.pool_types]), x.shape[0])

    def gate_from_pools(self, pooled: torch.Tensor, batch: int) -> torch.Tensor:
        """The gate from the pools stacked along the batch dim, (len(pool_types) * B, C): one MLP call
        (same weights, same result as one call per pool)."""
        logits = self.mlp(pooled).view(len(self.pool_types), batch, -1).sum(0)
        return torch.sigmoid(logits)[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


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

    Shapes: x (B, C, H, W) -> y (B, C, H, W); ``attention_maps(x)``: 'channel' a (B, C, 1, 1) and,
    unless ``no_spatial``, 'spatial' s (B, 1, H, W), so that ``y = x * a * s``.
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

    def attention_maps(self, x: torch.Tensor) -> dict:
        """The gates as ``forward`` computes them: 'channel' a from x, 'spatial' s from x * a.

        (In train mode this runs the spatial BN, as ``forward`` does: its running statistics update.)
        """
        maps = {'channel': self.ChannelGate.gate(x)}
        if self.SpatialGate is not None:
            maps['spatial'] = self.SpatialGate.gate(x * maps['channel'])
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the sub-gates' forwards are x * gate(x), with the gates of attention_maps
        x = self.ChannelGate(x)
        return x if self.SpatialGate is None else self.SpatialGate(x)
