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
import math

import torch
from torch import nn

from .helpers import (check_divisible, check_positive_int, may_overwrite, needs_grad, residual_output,
                      use_custom_backward, var_mean)
from .recompute import rebuilt_in_backward


def _score(xg: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """sum_c x_c * mean(x_c) per group and position, (B, G, 1, HW): one batched matrix-vector product."""
    return torch.matmul(mean.transpose(2, 3), xg)


def _gate(score: torch.Tensor, mu: torch.Tensor, k: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """sigmoid(k (score - mu) + bias), folded into one affine per group, ``k = weight / (std + eps)``."""
    return torch.addcmul(bias - k * mu, score, k).sigmoid_()


def _score_stats(score: torch.Tensor):
    """Mean and unbiased std (N - 1, as the official code) of the score over HW, each (B, G, 1, 1)."""
    var, mean = var_mean(score, dims=(3, ), correction=1)
    return mean, var.sqrt()


def _gate_from_score(score: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """sigmoid(weight * (score - mean) / (std + eps) + bias) over HW."""
    mean, std = _score_stats(score)
    return _gate(score, mean, weight / (std + eps), bias)


def _gate_from_score_(score: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """``_gate_from_score`` written over ``score`` (without autograd): centred, scaled, shifted and passed
    through the sigmoid in place, no other map of its size."""
    mean = score.mean(3, keepdim=True)
    centred = score.sub_(mean)
    std = torch.linalg.vector_norm(centred, dim=3, keepdim=True).div_(math.sqrt(score.shape[3] - 1))
    return torch.addcmul(bias, centred, weight / (std + eps), out=centred).sigmoid_()


class _SGEResidualFn(torch.autograd.Function):
    """``identity + SGE(x)`` with a hand-written backward: two full-size passes for dx and three maps of
    the score's size, where autograd of the plain expressions adds up three full-size gradients of x
    and keeps or rebuilds about ten score-size temporaries for the normalisation.

    Per group and position p (``N = HW``), with ``m`` the channel means (B, G, C/G, 1), the score
    ``s = m^T x``, its mean ``mu`` and unbiased std ``sd`` over p, ``c = s - mu``, ``k = weight / (sd + eps)``
    and ``gate = sigmoid(k c + bias)``; with ``g`` the output gradient and sums over p::

        dt     = sum_C(g * x) * gate * (1 - gate)          (the gradient of the sigmoid's input)
        d bias = sum(dt),   dk = sum(dt c),   d weight = dk / (sd + eps)
        ds     = k (dt - mean(dt)) + alpha c,   alpha = -dk k / ((sd + eps) sd (N - 1))
        dx     = g * gate + m * ds + sum_p(x * ds) / N     (through the product, the score and m)

    (``alpha c`` is the path through ``sd``; the mean's gradient removes the mean of both terms, and
    ``c`` has mean 0.) Parameter gradients are summed over the batch. Keeps x, m, the score and its
    mean and std. Apply as ``_SGEResidualFn.apply(x, identity, own_x, weight, bias, groups, eps)``;
    ``own_x``: write the result over x (see ``residual_output``).
    """

    @staticmethod
    def forward(ctx, x, identity, own_x, weight, bias, groups, eps):
        b, c, h, w = x.shape
        xg = x.view(b, groups, c // groups, h * w)
        mean = xg.mean(3, keepdim=True)
        with torch.autocast(x.device.type, enabled=False):  # the score in x's precision, as the backward
            score = _score(xg, mean)
        mu, sd = _score_stats(score)
        gate = _gate(score, mu, weight / (sd + eps), bias)
        ctx.save_for_backward(x, mean, score, mu, sd, weight, bias)
        ctx.groups, ctx.eps = groups, eps
        out = residual_output(ctx, x, own_x)
        torch.addcmul(identity.reshape(xg.shape), xg, gate, out=out.view(xg.shape))
        return out

    @staticmethod
    def backward(ctx, grad):
        x, mean, score, mu, sd, weight, bias = ctx.saved_tensors
        b, c, h, w = x.shape
        n = h * w
        xg = x.view(b, ctx.groups, c // ctx.groups, n)
        g = grad.reshape(xg.shape)
        sd_eps = sd + ctx.eps
        k = weight / sd_eps
        gate = _gate(score, mu, k, bias)
        buf = torch.empty_like(xg)  # g x, then dx
        dt = torch.mul(g, xg, out=buf).sum(2, keepdim=True)  # d gate, then dt, then ds
        torch.ops.aten.sigmoid_backward(dt, gate, grad_input=dt)
        centred = score - mu
        d_bias = dt.sum(3, keepdim=True)
        dk = torch.matmul(dt, centred.transpose(2, 3))
        alpha = dk * k / (sd_eps * sd * (1 - n))
        d_score = torch.addcmul(-k * d_bias / n, dt, k, out=dt).addcmul_(centred, alpha)
        grad_x = torch.addcmul(torch.matmul(xg, d_score.transpose(2, 3)).div_(n), mean, d_score, out=buf)
        grad_x.addcmul_(g, gate)
        d_weight = (dk / sd_eps).sum(0, keepdim=True)
        return grad_x.view(b, c, h, w), grad, None, d_weight, d_bias.sum(0, keepdim=True), None, None


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

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[2] * x.shape[3] < 2:
            raise ValueError(f'{type(self).__name__}: needs at least 2 spatial positions for the '
                             f'unbiased std over H*W, got an input of shape {tuple(x.shape)}; '
                             'use a larger input image')

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, G, 1, H, W) spatial gate of each group (to multiply ``x`` viewed as (B, G, C/G, H, W))."""
        self._check(x)
        b, c, h, w = x.shape
        xg = x.view(b, self.groups, c // self.groups, h * w)
        score = _score(xg, xg.mean(3, keepdim=True))
        in_place = not torch.compiler.is_compiling() and not needs_grad(x, self.weight, self.bias)
        gate = (_gate_from_score_ if in_place else _gate_from_score)(score, self.weight, self.bias, self.eps)
        return gate.view(b, self.groups, 1, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gate = self.gate(x)
        return (x.view(b, self.groups, c // self.groups, h, w) * gate).view(b, c, h, w)

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """``identity + self(x)`` in one pass over the feature map (used by the attention blocks).

        ``inplace=True`` lets the result take x's memory when autograd does not need it (no grad, or x
        rebuilt in the backward: :func:`~mmattn.layers.recompute.rebuilt_in_backward`). With autograd,
        :class:`_SGEResidualFn`; under ``torch.compile`` the plain formula (inductor fuses it).
        """
        self._check(x)
        if not torch.compiler.is_compiling() and not (x.is_contiguous() and identity.is_contiguous()):
            # e.g. channels_last: the groups' matrix products read NCHW without copies; one copy each,
            # and the block continues in NCHW
            x, identity = x.contiguous(), identity.contiguous()
        b, c, h, w = x.shape
        if use_custom_backward(x, identity, self.weight, self.bias):
            return _SGEResidualFn.apply(x, identity, inplace and rebuilt_in_backward(x), self.weight, self.bias,
                                        self.groups, self.eps)
        shape = (b, self.groups, c // self.groups, h, w)
        gate, xg = self.gate(x), x.view(shape)
        out = xg if may_overwrite(inplace, x, identity) else None
        return torch.addcmul(identity.reshape(shape), xg, gate, out=out).view(b, c, h, w)
