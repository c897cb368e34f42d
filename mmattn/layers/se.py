"""Squeeze-and-Excitation (SE).

Hu, Shen, Sun: "Squeeze-and-Excitation Networks", CVPR 2018 (arXiv:1709.01507).

For ``x`` of shape (B, C, H, W) and hidden width ``r = C // reduction``::

    z = mean_{H,W}(x)                       (B, C)
    s = sigmoid(W2 relu(W1 z + b1) + b2)    W1: (r, C), W2: (C, r)
    y = x * s[:, :, None, None]             (B, C, H, W)

The FCs carry a bias by default, as in the paper's Caffe model, Cadene's port, timm and mmpretrain
(SE-ResNet-50: 28,088,024 parameters with the ImageNet head). ``bias=False`` gives the
moskomule/senet.pytorch layout (28,071,976). Parameter names follow moskomule's ``SELayer``
(``fc.0`` and ``fc.2`` are the two Linear layers), so its checkpoints load as they are.
"""
import torch
from torch import nn

from .checks import check_positive_int, reduced_channels


class SEModule(nn.Module):
    """SE channel gate; mmdet plugin name ``se``.

    Args:
        in_channels (int): C, channels of the input and output.
        reduction (int): C // reduction hidden units (floor). Default 16.
        bias (bool): FC biases (paper/timm/mmpretrain: True; moskomule: False). Default True.

    Shapes: x (B, C, H, W) -> y (B, C, H, W); ``attention_maps(x)['channel']``: s, (B, C, 1, 1).
    """
    _abbr_ = 'se'

    def __init__(self, in_channels: int, reduction: int = 16, bias: bool = True):
        super().__init__()
        check_positive_int('in_channels', in_channels, type(self).__name__)
        hidden = reduced_channels(in_channels, reduction, type(self).__name__)
        self.in_channels = in_channels
        self.fc = nn.Sequential(
            nn.Linear(in_channels, hidden, bias=bias),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, in_channels, bias=bias),
            nn.Sigmoid())

    def init_weights(self) -> None:
        """PyTorch's default Linear init, as in every official SE implementation."""
        self.fc[0].reset_parameters()
        self.fc[2].reset_parameters()

    def attention_maps(self, x: torch.Tensor) -> dict:
        """``{'channel': s}``, the (B, C, 1, 1) gate that ``forward`` multiplies x by."""
        return {'channel': self.fc(x.mean((2, 3)))[:, :, None, None]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_maps(x)['channel']
