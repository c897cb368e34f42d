"""Pyramid Squeeze Attention (PSA), the conv2 replacement of EPSANet.

Zhang, Zu, Lu, Zou, Meng: "EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional
Neural Network", ACCV 2022 (arXiv:2105.14447; v1 titled "Pyramid Split Attention"); official code
murufeng/EPSANet.

With S branches (kernels k_i, conv groups g_i) and out_channels P (split into S chunks of P/S)::

    F_i = Conv_{k_i, groups g_i}(x)        every branch sees ALL input channels -> (B, P/S, H/s, W/s)
    e_i = sigmoid(fc2(relu(fc1(mean_{H,W}(F_i)))))   one SE weight module shared by all branches
    A   = softmax over i of (e_1..e_S)     per channel, across the S scales
    y   = concat(A_S F_S, ..., A_2 F_2, A_1 F_1)     (B, P, H/s, W/s)

The concatenation order is REVERSED, as in the official code (checked: reversed matches its output
exactly, the natural order does not), so official checkpoints' bn2/conv3 line up without a
permutation. Keys follow the official module: ``conv_1..conv_S`` and ``se.fc1``/``se.fc2`` (1x1 convs
with bias, hidden width (P/S) // reduction). Defaults are the official "Small" configuration:
kernels (3, 5, 7, 9), groups (1, 4, 8, 16), reduction 16.
"""
from typing import Sequence

import torch
from torch import nn

from .checks import check_divisible, check_positive_int, check_same_length, reduced_channels


class SEWeight(nn.Module):
    """The SE weight module of PSA: returns the sigmoid gate (B, C, 1, 1), not the gated input."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = reduced_channels(channels, reduction, 'PSAModule')
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class PSAModule(nn.Module):
    """Pyramid squeeze attention over S multi-scale grouped convolutions.

    Args:
        in_channels (int): input channels; divisible by every conv group.
        out_channels (int, optional): P; divisible by the number of branches S, and P/S divisible by
            every conv group. Default: ``in_channels``.
        stride (int): stride of every branch conv. Default 1.
        conv_kernels (Sequence[int]): odd kernel size per branch. Default (3, 5, 7, 9).
        conv_groups (Sequence[int]): conv groups per branch. Default (1, 4, 8, 16).
        reduction (int): SE reduction on P/S channels. Default 16.
        dilation (int): dilation of every branch conv (padding = dilation * (k // 2)). Default 1.

    Shapes: x (B, in_channels, H, W) -> y (B, P, H', W') (H' = ceil(H / stride));
    ``attention_maps(x)['scale']``: the softmax weights A_i, (B, S, P/S, 1, 1), branch i along dim 1.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = None,
                 stride: int = 1,
                 conv_kernels: Sequence[int] = (3, 5, 7, 9),
                 conv_groups: Sequence[int] = (1, 4, 8, 16),
                 reduction: int = 16,
                 dilation: int = 1):
        super().__init__()
        owner = type(self).__name__
        out_channels = in_channels if out_channels is None else out_channels
        check_positive_int('in_channels', in_channels, owner)
        check_positive_int('out_channels', out_channels, owner)
        check_positive_int('stride', stride, owner)
        check_positive_int('dilation', dilation, owner)
        branches = check_same_length(owner, conv_kernels=conv_kernels, conv_groups=conv_groups)
        if branches < 1:
            raise ValueError(f'{owner}: conv_kernels must not be empty')
        check_divisible('out_channels', out_channels, branches, owner,
                        f'one chunk per branch, {branches} branches')
        split = out_channels // branches
        for i, (k, g) in enumerate(zip(conv_kernels, conv_groups)):
            if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise ValueError(f'{owner}: conv_kernels[{i}] must be a positive odd int, got {k!r}')
            check_positive_int(f'conv_groups[{i}]', g, owner)
            check_divisible('in_channels', in_channels, g, owner, f'conv_groups[{i}] = {g}')
            check_divisible(f'out_channels / {branches} (branch width)', split, g, owner,
                            f'conv_groups[{i}] = {g}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_kernels = tuple(conv_kernels)
        self.conv_groups = tuple(conv_groups)
        self.branch_names = tuple(f'conv_{i + 1}' for i in range(branches))
        for name, k, g in zip(self.branch_names, conv_kernels, conv_groups):
            self.add_module(name, nn.Conv2d(in_channels, split, k, stride=stride, padding=dilation * (k // 2),
                                            dilation=dilation, groups=g, bias=False))
        self.se = SEWeight(split, reduction)
        self.init_weights()

    def init_weights(self) -> None:
        """Official init: conv weights Normal(0, sqrt(2 / (k*k*out))) (= kaiming fan_out); biases default."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.reset_parameters()  # default bias init
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def branches_and_scale(self, x: torch.Tensor):
        """F_S, ..., F_1 stacked as (B, S, P/S, H', W') and their weights A (B, S, P/S, 1, 1), both in
        the concatenation order (branch S first): the shared SE and the softmax treat every branch
        alike, so stacking them reversed at once needs no flipped copy of the maps."""
        feats = torch.stack([getattr(self, name)(x) for name in reversed(self.branch_names)], dim=1)
        b, s, c, h, w = feats.shape
        scale = self.se(feats.reshape(b * s, c, h, w)).reshape(b, s, c, 1, 1).softmax(dim=1)
        return feats, scale

    def attention_maps(self, x: torch.Tensor) -> dict:
        """``{'scale': A}``, the softmax weights over the S scales (B, S, P/S, 1, 1), A[:, i - 1] for
        branch i (kernel ``conv_kernels[i - 1]``), as ``forward`` applies them."""
        return {'scale': self.branches_and_scale(x)[1].flip(1)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, scale = self.branches_and_scale(x)  # y = concat(A_S F_S, ..., A_1 F_1)
        b, s, c, h, w = feats.shape
        return (feats * scale).reshape(b, s * c, h, w)
