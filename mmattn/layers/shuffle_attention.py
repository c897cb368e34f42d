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

from .helpers import check_divisible, check_positive_int, may_overwrite, sigmoid_affine_gate, var_mean


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

    def _affine(self, x6: torch.Tensor):
        """Both branches as ONE element-wise gate ``x * sigmoid(A x + B)``: returns A and B.

        ``x6`` is x viewed as (B, G, 2, C'', H, W) ([:, :, 0] channel branch, [:, :, 1] spatial branch).
        Per sample and channel: the channel branch is A = 0, B = cweight * mean + cbias; the spatial
        branch (GN affine then SA affine) is A = sweight * gn.weight / std and
        B = sweight * (gn.bias - gn.weight * mean / std) + sbias, with the GN's biased std.
        A and B have shape (B, G, 2, C'', 1, 1).
        """
        half = x6.shape[3]
        var, mean = var_mean(x6[:, :, 1], dims=(3, 4))
        chan_mean = x6[:, :, 0].mean((3, 4), keepdim=True)
        cw, cb, sw, sb, gw, gb = (p.view(half, 1, 1) for p in (self.cweight, self.cbias, self.sweight,
                                                                self.sbias, self.gn.weight, self.gn.bias))
        scale = sw * gw * torch.rsqrt(var + self.gn.eps)
        a = torch.stack((torch.zeros_like(scale), scale), dim=2)
        bias = torch.stack((cw * chan_mean + cb, sw * gb + sb - scale * mean), dim=2)
        return a, bias

    def _gated(self, x: torch.Tensor) -> torch.Tensor:
        """Both gated branches before the shuffle, as (B, 2, C/2, H, W)."""
        b, c, h, w = x.shape
        x6 = x.view(b, self.groups, 2, c // (2 * self.groups), h, w)
        return sigmoid_affine_gate(x6, *self._affine(x6)).view(b, 2, c // 2, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # channel shuffle (2 groups): output channel 2q + s is pre-shuffle channel s * C/2 + q
        return self._gated(x).transpose(1, 2).reshape(b, c, h, w)

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """``identity + self(x)``: the shuffle is read through a strided view inside the add.

        ``inplace=True`` lets the result take x's memory when autograd does not need x.
        """
        b, c, h, w = x.shape
        out = x.view(b, c // 2, 2, h, w) if may_overwrite(inplace, x, identity) else None
        gated = self._gated(x).transpose(1, 2)  # x is fully read here, before out is written
        return torch.add(identity.reshape(b, c // 2, 2, h, w), gated, out=out).view(b, c, h, w)
