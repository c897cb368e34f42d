"""Spatial Group-wise Enhance (SGE).

Li, Hu, Yang: "Spatial Group-wise Enhance: Improving Semantic Feature Learning in Convolutional
Networks", 2019 (arXiv:1905.09646); official code implus/PytorchInsight.

With G groups, each group g of C/G channels x_g (shape (C/G, H, W)) is scored against its own mean
feature, the score map normalised over space, then used as a spatial gate for the whole group::

    c_g = sum_channels(x_g * mean_{H,W}(x_g))                 (H, W)
    n_g = (c_g - mean(c_g)) / (std(c_g) + 1e-5)               std is unbiased (N - 1), as in the code
    y_g = x_g * sigmoid(weight_g * n_g + bias_g)

``weight`` and ``bias`` have shape (1, G, 1, 1) and start at 0 and 1 (keys ``weight``/``bias``, as in
the official checkpoints): 2G parameters per module. The unbiased std needs H*W >= 2; a 1x1 map would
give NaN in the official code, so it is refused here.
"""
import torch
from torch import nn

from .helpers import check_divisible, check_positive_int, may_overwrite, var_mean


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
        check_divisible('in_channels', in_channels, groups, owner, f'groups = {groups}')
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

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, G, 1, H, W) spatial gate of each group (to multiply ``x`` viewed as (B, G, C/G, H, W))."""
        b, c, h, w = x.shape
        if h * w < 2:
            raise ValueError(f'{type(self).__name__}: needs at least 2 spatial positions for the '
                             f'unbiased std over H*W, got an input of shape {tuple(x.shape)}; '
                             'use a larger input image')
        xg = x.view(b, self.groups, c // self.groups, h * w)
        # sum_c x_c * mean(x_c) for every group: one batched matrix-vector product, no temporary
        score = torch.matmul(xg.mean(3).unsqueeze(2), xg).view(b, self.groups, h * w)
        var, mean = var_mean(score, dims=(2,), correction=1)
        std = var.sqrt()
        # sigmoid(weight * (score - mean) / (std + eps) + bias), folded into one affine per group
        scale = self.weight.view(1, self.groups, 1) / (std + self.eps)
        return torch.sigmoid(torch.addcmul(self.bias.view(1, self.groups, 1) - scale * mean, score, scale)) \
            .view(b, self.groups, 1, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gate = self.gate(x)
        return (x.view(b, self.groups, c // self.groups, h, w) * gate).view(b, c, h, w)

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """``identity + self(x)`` in one pass over the feature map (used by the attention blocks).

        ``inplace=True`` lets the result take x's memory when autograd does not need x.
        """
        b, c, h, w = x.shape
        shape = (b, self.groups, c // self.groups, h, w)
        gate, xg = self.gate(x), x.view(shape)
        out = xg if may_overwrite(inplace, x, identity) else None
        return torch.addcmul(identity.reshape(shape), xg, gate, out=out).view(b, c, h, w)
