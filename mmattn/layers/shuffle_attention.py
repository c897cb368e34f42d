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

from .helpers import check_divisible, check_positive_int, may_overwrite, var_mean


def _shuffle_gate(x6: torch.Tensor, c0: torch.Tensor, a1: torch.Tensor, c1: torch.Tensor) -> torch.Tensor:
    """Both gated halves of x6 = x viewed as (B, G, 2, C'', H, W), written into one new tensor::

        y[:, :, 0] = x0 * sigmoid(c0)             channel half: one gate value per channel
        y[:, :, 1] = x1 * sigmoid(a1 * x1 + c1)   spatial half: an element-wise gate

    ``c0``, ``a1``, ``c1`` have shape (B, G, C'', 1, 1).
    """
    out = torch.empty_like(x6)
    torch.mul(x6[:, :, 0], c0.sigmoid(), out=out[:, :, 0])
    torch.addcmul(c1, a1, x6[:, :, 1], out=out[:, :, 1]).sigmoid_().mul_(x6[:, :, 1])
    return out


def _sa_coefficients(x6: torch.Tensor, params, eps: float):
    """Both branches as gates ``x * sigmoid(A x + C)`` with per-sample, per-channel A and C.

    ``x6`` is x viewed as (B, G, 2, C'', H, W) ([:, :, 0] channel branch, [:, :, 1] spatial branch),
    ``params`` = (cweight, cbias, sweight, sbias, gn.weight, gn.bias) viewed as (C'', 1, 1).
    The channel branch is A = 0, C = cweight * m0 + cbias; the spatial branch (GN affine, then SA affine)
    is A = sweight * gn.weight * rstd, C = sweight * gn.bias + sbias - A * m1, with m0, m1 the channel
    means and rstd = 1 / sqrt(biased var + eps) of the spatial half. Returns c0, a1, c1, m0, m1, rstd,
    each of shape (B, G, C'', 1, 1).
    """
    cw, cb, sw, sb, gw, gb = params
    m0 = x6[:, :, 0].mean((3, 4), keepdim=True)
    var, m1 = var_mean(x6[:, :, 1], dims=(3, 4))
    rstd = torch.rsqrt(var + eps)
    a1 = sw * gw * rstd
    return cw * m0 + cb, a1, sw * gb + sb - a1 * m1, m0, m1, rstd


class _ShuffleAttentionFn(torch.autograd.Function):
    """SA before the shuffle (statistics + both gates) with a hand-written backward.

    Autograd of the plain expressions keeps the full-size sigmoid of the spatial half, and scatters the
    gradients of the two halves' statistics into full-size zero tensors that are then added up. Here
    the backward keeps x6 and per-channel values only and writes each half's gradient once. With
    ``s0 = sigmoid(c0)``, ``s1 = sigmoid(a1 x1 + c1)`` (recomputed), ``N = H W`` and sums over H, W:

    * channel half: ``k0 = dL/dc0 = sum(g0 x0) s0 (1 - s0)``, ``dx0 = g0 s0 + cweight k0 / N``;
    * spatial half: ``dz = g1 x1 s1 (1 - s1)``, ``C = sum(dz) = dL/dc1``,
      ``A = sum(dz x1) - C m1 = dL/da1`` (c1 depends on a1), ``dvar = -A sweight gn.weight rstd^3 / 2``,
      ``dm1 = -C a1``, ``dx1 = g1 s1 + dz a1 + dm1 / N + dvar 2 (x1 - m1) / N``;
    * parameters (summed over batch and groups): ``d cweight = k0 m0``, ``d cbias = k0``,
      ``d sweight = A gn.weight rstd + C gn.bias``, ``d sbias = C``, ``d gn.weight = A sweight rstd``,
      ``d gn.bias = C sweight``.
    """

    @staticmethod
    def forward(ctx, x6, eps, *params):
        c0, a1, c1, m0, m1, rstd = _sa_coefficients(x6, params, eps)
        cw, _, sw, _, gw, gb = params
        ctx.save_for_backward(x6, c0, a1, c1, m0, m1, rstd, cw, sw, gw, gb)
        return _shuffle_gate(x6, c0, a1, c1)

    @staticmethod
    def backward(ctx, grad):
        x6, c0, a1, c1, m0, m1, rstd, cw, sw, gw, gb = ctx.saved_tensors
        n = x6.shape[-1] * x6.shape[-2]
        hw = (-2, -1)
        x0, x1, g0, g1 = x6[:, :, 0], x6[:, :, 1], grad[:, :, 0], grad[:, :, 1]
        grad_x6 = torch.empty_like(x6)
        # channel half
        s0 = c0.sigmoid()
        k0 = torch.ops.aten.sigmoid_backward((g0 * x0).sum(hw, keepdim=True), s0)
        torch.addcmul(cw * k0 / n, g0, s0, out=grad_x6[:, :, 0])
        # spatial half
        s1 = torch.addcmul(c1, a1, x1).sigmoid_()
        dz = torch.ops.aten.sigmoid_backward(g1 * x1, s1)
        big_c = dz.sum(hw, keepdim=True)
        big_a = (dz * x1).sum(hw, keepdim=True) - big_c * m1
        alpha = big_a * sw * gw * rstd.pow(3) * (-1.0 / n)  # 2 * dvar / N
        beta = -big_c * a1 / n - alpha * m1
        gx1 = torch.addcmul(beta, x1, alpha, out=grad_x6[:, :, 1])
        gx1.addcmul_(g1, s1).addcmul_(dz, a1)
        # parameters: per-channel values summed over batch and groups
        red = (0, 1)
        grads = ((k0 * m0).sum(red), k0.sum(red), (big_a * gw * rstd + big_c * gb).sum(red), big_c.sum(red),
                 (big_a * sw * rstd).sum(red), (big_c * sw).sum(red))
        return (grad_x6, None) + grads


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
        """Both gated branches before the shuffle, as (B, 2, C/2, H, W)."""
        b, c, h, w = x.shape
        half = c // (2 * self.groups)
        x6 = x.view(b, self.groups, 2, half, h, w)
        params = tuple([p.view(half, 1, 1) for p in (self.cweight, self.cbias, self.sweight, self.sbias,
                                                      self.gn.weight, self.gn.bias)])
        if torch.compiler.is_compiling():
            # the plain formula: inductor fuses it (and cannot trace writes into strided out= views)
            c0, a1, c1 = _sa_coefficients(x6, params, self.gn.eps)[:3]
            x0, x1 = x6[:, :, 0], x6[:, :, 1]
            gated = torch.stack((x0 * torch.sigmoid(c0), x1 * torch.sigmoid(a1 * x1 + c1)), dim=2)
        elif torch.is_grad_enabled() and any([t.requires_grad for t in (x6, ) + params]):
            gated = _ShuffleAttentionFn.apply(x6, self.gn.eps, *params)
        else:
            gated = _shuffle_gate(x6, *_sa_coefficients(x6, params, self.gn.eps)[:3])
        return gated.view(b, 2, c // 2, h, w)

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
