"""Efficient Channel Attention (ECA).

Wang, Wu, Zhu, Li, Zuo, Hu: "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020 (arXiv:1910.03151).

For ``x`` of shape (B, C, H, W) and an odd kernel size ``k``::

    z = mean_{H,W}(x)                          (B, 1, C), a length-C sequence
    u_c = sum_j w_j z_{c + j - (k-1)/2}        1-D conv over channels, zero padding, no bias
    y = x * sigmoid(u)[:, :, None, None]       (B, C, H, W)

``k`` parameters per module (key ``conv.weight``, shape (1, 1, k), as in BangguWu/ECANet). The paper's
adaptive rule (``kernel_size='adaptive'``) is :func:`eca_kernel_size`; the official code does not use
it and its released checkpoints use per-stage lists (R-50: 3, 5, 5, 7).
"""
import math
from typing import Union

import torch
from torch import nn

from .checks import check_positive_int


#: per-stage kernel sizes of ECA-Net's released ImageNet checkpoints, by depth
RELEASED_KERNEL_SIZES = {18: (3, 5, 7, 7), 34: (3, 3, 5, 7), 50: (3, 5, 5, 7), 101: (3, 3, 5, 7),
                         152: (3, 3, 5, 7)}


def eca_kernel_size(channels: int, gamma: int = 2, beta: int = 1) -> int:
    """ECA-Net's adaptive kernel size ``k = |log2(C)/gamma + beta/gamma|_odd``.

    Rounding as in the paper's figure and timm: ``t = int(|log2(C) + beta| / gamma)``, then ``k = t`` if
    ``t`` is odd, else ``t + 1``. C = 64 -> 3, 128 -> 5, 256/512/1024 -> 5, 2048 -> 7. (timm additionally
    clamps k to >= 3; the paper does not, and neither do we.)
    """
    check_positive_int('channels', channels, 'eca_kernel_size')
    t = int(abs(math.log2(channels) + beta) / gamma)
    return t if t % 2 else t + 1


class ECAModule(nn.Module):
    """ECA channel gate; mmdet plugin name ``eca``.

    Args:
        in_channels (int): C. Used only for the adaptive kernel size (the official layer ignores it).
        kernel_size (int | str): an odd int, or ``'adaptive'`` for the paper's rule. Default 3 (the
            official ``eca_layer`` default).
        gamma (int), beta (int): constants of the adaptive rule. Default 2 and 1.

    Shapes: x (B, C, H, W) -> y (B, C, H, W); ``attention_maps(x)['channel']``: (B, C, 1, 1).
    """
    _abbr_ = 'eca'

    def __init__(self, in_channels: int, kernel_size: Union[int, str] = 3, gamma: int = 2, beta: int = 1):
        super().__init__()
        owner = type(self).__name__
        check_positive_int('in_channels', in_channels, owner)
        if kernel_size == 'adaptive':
            kernel_size = eca_kernel_size(in_channels, gamma, beta)
        elif isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 \
                or kernel_size % 2 == 0:
            raise ValueError(f"{owner}: kernel_size must be a positive odd int or 'adaptive', "
                             f'got {kernel_size!r}')
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def init_weights(self) -> None:
        """PyTorch's default Conv1d init, as in the official code."""
        self.conv.reset_parameters()

    def attention_maps(self, x: torch.Tensor) -> dict:
        """``{'channel': sigmoid(u)}``, the (B, C, 1, 1) gate that ``forward`` multiplies x by."""
        b, c = x.shape[:2]
        return {'channel': self.conv(x.mean((2, 3)).view(b, 1, c)).sigmoid().view(b, c, 1, 1)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_maps(x)['channel']
