"""Shuffle Attention (SA).

Zhang, Yang: "SA-Net: Shuffle Attention for Deep Convolutional Neural Networks", ICASSP 2021
(arXiv:2102.00240); official code wofmanaf/SA-Net.

With G groups, C' = C / G and C'' = C / (2G) (so C must be divisible by 2G), x of shape (B, C, H, W)::

    x  -> (B*G, C', H, W), split into x0, x1 of C'' channels each
    x0 -> x0 * sigmoid(cweight * mean_{H,W}(x0) + cbias)          channel branch
    x1 -> x1 * sigmoid(sweight * GN(x1) + sbias)                   spatial branch (element-wise gate)
    y  =  shuffle_2(concat(x0', x1') reshaped to (B, C, H, W))

``GN`` is a GroupNorm with num_groups == num_channels == C'' (an InstanceNorm with affine, as the
author confirms). The four (1, C'', 1, 1) parameters are shared by all G groups and start at
cweight = sweight = 0, cbias = sbias = 1, so both gates start at sigmoid(1). ``shuffle_2`` is the
channel shuffle with 2 groups: output channel o is input channel (o mod 2) * C/2 + o // 2.
Parameters per module: 6 C'' = 3C/G (12/24/48/96 for C = 256/512/1024/2048 with G = 64).

A faster ``identity + SA(x)`` for the blocks lives in :mod:`mmattn.fused.shuffle_attention`.
"""
from typing import Dict

import torch
from torch import nn

from .checks import check_groups, check_positive_int


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle, as in the official code: (B, g, C/g) channels -> (B, C/g, g)."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


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
        check_groups(in_channels, groups, owner, parts=2, why='each group is split in two halves')
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

    def _branches(self, x: torch.Tensor):
        """x0, x1: the channel and spatial halves of every group, each (B*G, C'', H, W)."""
        b, c, h, w = x.shape
        return x.reshape(b * self.groups, c // self.groups, h, w).chunk(2, dim=1)

    def attention_maps(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The gates of both branches (before the shuffle), for x of shape (B, C, H, W).

        ``'channel'``: (B, C/2, 1, 1), ``'spatial'``: (B, C/2, H, W). Index ``g * C'' + j`` is channel j
        of group g's channel (resp. spatial) branch, i.e. input channel ``g C' + j`` (resp. ``g C' + C'' + j``).
        """
        b, c, h, w = x.shape
        x0, x1 = self._branches(x)
        channel = torch.sigmoid(self.cweight * x0.mean((2, 3), keepdim=True) + self.cbias)
        spatial = torch.sigmoid(self.sweight * self.gn(x1) + self.sbias)
        return {'channel': channel.reshape(b, c // 2, 1, 1), 'spatial': spatial.reshape(b, c // 2, h, w)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = self.attention_maps(x)
        x0, x1 = self._branches(x)
        out = torch.cat([x0 * gates['channel'].reshape(*x0.shape[:2], 1, 1), x1 * gates['spatial'].reshape(x1.shape)],
                        dim=1)
        return channel_shuffle(out.reshape(x.shape), 2)
