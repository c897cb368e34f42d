"""Shuffle Attention (SA).

Zhang, Yang: "SA-Net: Shuffle Attention for Deep Convolutional Neural Networks", ICASSP 2021
(arXiv:2102.00240); official code wofmanaf/SA-Net.

With G groups, C' = C / G and C'' = C / (2G) (so C must be divisible by 2G)::

    x  -> (B*G, C', H, W), split into x0, x1 of C'' channels each
    x0 -> x0 * sigmoid(cweight * mean_{H,W}(x0) + cbias)          channel branch
    x1 -> x1 * sigmoid(sweight * GN(x1) + sbias)                   spatial branch (element-wise gate)
    y  =  shuffle_2(concat(x0', x1') reshaped to (B, C, H, W))

``GN`` is a GroupNorm with num_groups == num_channels == C'' (an InstanceNorm with affine, as the
author confirms). The four (1, C'', 1, 1) parameters are shared by all G groups and start at
cweight = sweight = 0, cbias = sbias = 1, so both gates start at sigmoid(1). ``shuffle_2`` is the
channel shuffle with 2 groups: output channel o is input channel (o mod 2) * C/2 + o // 2.
Parameters per module: 6 C'' = 3C/G (12/24/48/96 for C = 256/512/1024/2048 with G = 64).
"""
import torch
from torch import nn

from .helpers import check_divisible, check_positive_int


class ShuffleAttention(nn.Module):
    """SA gate; mmdet plugin name ``sa``.

    Args:
        in_channels (int): C; must be divisible by ``2 * groups``.
        groups (int): G, number of channel groups. Default 64 (the official value).
    """
    _abbr_ = 'sa'

    def __init__(self, in_channels: int, groups: int = 64):
        super().__init__()
        owner = type(self).__name__
        check_positive_int('in_channels', in_channels, owner)
        check_positive_int('groups', groups, owner)
        check_divisible('in_channels', in_channels, 2 * groups, owner,
                        f'2 * groups = {2 * groups}: each of the {groups} groups is split in two halves')
        self.in_channels = in_channels
        self.groups = groups
        half = in_channels // (2 * groups)
        self.cweight = nn.Parameter(torch.empty(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.empty(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.empty(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.empty(1, half, 1, 1))
        self.gn = nn.GroupNorm(half, half)
        self.init_weights()

    def init_weights(self) -> None:
        """Official init: cweight = sweight = 0, cbias = sbias = 1, GN weight 1 and bias 0."""
        nn.init.zeros_(self.cweight)
        nn.init.ones_(self.cbias)
        nn.init.zeros_(self.sweight)
        nn.init.ones_(self.sbias)
        self.gn.reset_parameters()

    def _gated(self, x: torch.Tensor) -> torch.Tensor:
        """Both branches before the shuffle, as ONE element-wise gate ``x * sigmoid(A x + B)``.

        Per sample and channel: the channel branch is A = 0, B = cweight * mean + cbias; the spatial
        branch (GN affine then SA affine) is A = sweight * gn.weight / std and
        B = sweight * (gn.bias - gn.weight * mean / std) + sbias, with the GN's biased std.
        """
        b, c, h, w = x.shape
        half = c // (2 * self.groups)
        x6 = x.view(b, self.groups, 2, half, h, w)  # [:, :, 0] channel branch, [:, :, 1] spatial branch
        var, mean = torch.var_mean(x6[:, :, 1], dim=(3, 4), unbiased=False)
        chan_mean = x6[:, :, 0].mean((3, 4))
        cw, cb, sw, sb = (p.view(half) for p in (self.cweight, self.cbias, self.sweight, self.sbias))
        scale = sw * self.gn.weight * torch.rsqrt(var + self.gn.eps)
        a = torch.stack((torch.zeros_like(scale), scale), dim=2)
        bias = torch.stack((cw * chan_mean + cb, sw * self.gn.bias + sb - scale * mean), dim=2)
        gate = torch.sigmoid(torch.addcmul(bias[..., None, None], a[..., None, None], x6))
        return (x6 * gate).view(b, 2, c // 2, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # channel shuffle (2 groups): output channel 2q + s is pre-shuffle channel s * C/2 + q
        return self._gated(x).transpose(1, 2).reshape(b, c, h, w)

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """``identity + self(x)``: the shuffle is read through a strided view inside the add."""
        b, c, h, w = x.shape
        return torch.add(identity.reshape(b, c // 2, 2, h, w), self._gated(x).transpose(1, 2)).view(b, c, h, w)
