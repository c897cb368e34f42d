"""Spatial Group-wise Enhance (SGE).

Li, Hu, Yang: "Spatial Group-wise Enhance: Improving Semantic Feature Learning in Convolutional
Networks", 2019 (arXiv:1905.09646); official code implus/PytorchInsight.

With G groups, each group g of C/G channels x_g (shape (C/G, H, W)) is scored against its own mean
feature, the score map normalised over space, then used as a spatial gate for the whole group::

    c_g = sum_channels(x_g * mean_{H,W}(x_g))                 (H, W)
    n_g = (c_g - mean(c_g)) / (std(c_g) + 1e-5)               std is unbiased (N - 1), as in the code
    y_g = x_g * sigmoid(weight_g * n_g + bias_g)

``weight`` and ``bias`` have shape (1, G, 1, 1) and start at 0 and 1 (keys ``weight``/``bias``, as in
the official checkpoints): 2G parameters per module. Where a group's score has no spread (e.g. an
all-zero input), torch's ``std`` passes no gradient through the std, so the official formula stays
finite there; this file uses the same ``std``. The unbiased std needs H*W >= 2; a 1x1 map would give
NaN in the official code, so it is refused here.

A faster ``identity + SGE(x)`` for the blocks lives in :mod:`mmattn.fused.sge`.
"""
from typing import Dict

import torch
from torch import nn

from .checks import check_groups, check_positive_int


def check_spatial_size(x: torch.Tensor, owner: str) -> None:
    """Refuse maps with fewer than 2 positions: the unbiased std over H*W is undefined there."""
    if x.shape[2] * x.shape[3] < 2:
        raise ValueError(f'{owner}: needs at least 2 spatial positions for the unbiased std over H*W, '
                         f'got an input of shape {tuple(x.shape)}; use a larger input image')


class SpatialGroupEnhance(nn.Module):
    """SGE gate; mmdet plugin name ``sge``.

    Args:
        in_channels (int): C; must be divisible by ``groups``.
        groups (int): G. Default 64 (the official value).
        eps (float): added to the std. Default 1e-5.
    """
    _abbr_ = 'sge'

    def __init__(self, in_channels: int, groups: int = 64, eps: float = 1e-5):
        super().__init__()
        owner = type(self).__name__
        check_positive_int('in_channels', in_channels, owner)
        check_positive_int('groups', groups, owner)
        check_groups(in_channels, groups, owner)
        self.in_channels = in_channels
        self.groups = groups
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.empty(1, groups, 1, 1))
        self.init_weights()

    def init_weights(self) -> None:
        """Official init: weight 0, bias 1."""
        nn.init.zeros_(self.weight)
        nn.init.ones_(self.bias)

    def attention_maps(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``'spatial'``: the gate of every group, (B, G, H, W), for x of shape (B, C, H, W)."""
        check_spatial_size(x, type(self).__name__)
        b, c, h, w = x.shape
        xg = x.reshape(b * self.groups, c // self.groups, h, w)
        score = (xg * xg.mean((2, 3), keepdim=True)).sum(1).reshape(b, self.groups, h * w)
        t = score - score.mean(2, keepdim=True)
        t = t / (t.std(2, keepdim=True) + self.eps)
        return {'spatial': torch.sigmoid(t.reshape(b, self.groups, h, w) * self.weight + self.bias)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gate = self.attention_maps(x)['spatial']
        return (x.reshape(b, self.groups, c // self.groups, h, w) * gate.unsqueeze(2)).reshape(b, c, h, w)
