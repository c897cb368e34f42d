"""Fused ``identity + SA(x)`` (:class:`~mmattn.layers.ShuffleAttention`): statistics, both gates, the channel
shuffle and the residual add in one write of the output, with hand-written backwards.

Both branches are gates ``x * sigmoid(A x + C)`` with per-sample, per-channel A and C (A = 0 in the
channel branch). For an even G, the pre-shuffle channel ``s * C/2 + q`` and the output channel
``2q + s`` are both addressed by strided views of shape (B, 2, G/2, 2, C'', H, W), so
``out = identity + gated(x)`` is computed directly in the shuffled order by :class:`_SAResidualFn` (NCHW).
A channels-last (float32 / float64) input is shuffled first and gated in the output's order
(:func:`_sa_residual_channels_last`; with autograd :class:`_SAResidualChannelsLastFn`, whose backward
unshuffles dx), and the block stays channels-last. Odd G in NCHW takes the layer's plain formula.
"""
import torch

from ..layers.shuffle_attention import ShuffleAttention
from . import register_fused_residual
from .kernels import (backward_scratch, chunk_slices, memory_format_of, needs_grad, residual_output, scale_shift,
                      var_mean)

def _sa_coefficients(x6: torch.Tensor, params, eps: float):
    """A and C of both branches.

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


def _halves(t: torch.Tensor, groups: int, half: int, shuffled: bool):
    """(channel half, spatial half) of a (B, C, H, W) map as (B, 2, G/2, C'', H, W) views, aligned so
    that index [b, s, k, j] of a pre-shuffle map (x) and of a shuffled map (identity, output) meet in
    the residual add: pre-shuffle channel s*C/2 + q is output channel 2q + s, q = (2k + branch) C'' + j."""
    b, c, h, w = t.shape
    if shuffled:
        t7 = t.view(b, c // 2, 2, h, w).transpose(1, 2).unflatten(2, (groups // 2, 2, half))
    else:
        t7 = t.view(b, 2, groups // 2, 2, half, h, w)
    return t7[:, :, :, 0], t7[:, :, :, 1]


def _sa_residual(x, identity, groups, coefficients, out):
    """``out = identity + shuffle(gated x)``, each half read once and written once into ``out``."""
    half = x.shape[1] // (2 * groups)
    c0, a1, c1 = (t.view(t.shape[0], 2, groups // 2, half, 1, 1) for t in coefficients)
    x0, x1 = _halves(x, groups, half, shuffled=False)
    i0, i1 = _halves(identity, groups, half, shuffled=True)
    o0, o1 = _halves(out, groups, half, shuffled=True)
    torch.addcmul(i0, x0, c0.sigmoid(), out=o0)
    # the spatial gate is formed in the output's memory, then multiplied and added in place
    torch.addcmul(c1, a1, x1, out=o1).sigmoid_()
    torch.addcmul(i1, x1, o1, out=o1)
    return out


def _shuffle_channels_last(x: torch.Tensor, out: torch.Tensor = None) -> torch.Tensor:
    """The 2-group channel shuffle of a channels-last x into ``out`` (default: a new channels-last map):
    output channel ``o = 2q + s`` is input channel ``s C/2 + q``, so each pixel's output vector
    interleaves the two halves of its input vector, which is what writing ``complex(x[:C/2], x[C/2:])``
    into the output's memory does (one vectorised pass)."""
    c = x.shape[1]
    shuffled = torch.empty_like(x) if out is None else out
    pixels, pixels_out = x.permute(0, 2, 3, 1), shuffled.permute(0, 2, 3, 1)  # (B, H, W, C) views
    torch.complex(pixels[..., :c // 2], pixels[..., c // 2:],
                  out=torch.view_as_complex(pixels_out.unflatten(-1, (c // 2, 2))))
    return shuffled


def _unshuffle_channels_last_(shuffled: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The inverse of ``_shuffle_channels_last``, written into the channels-last ``out``: the even and the
    odd channels of each pixel become the first and the second half."""
    c = shuffled.shape[1]
    pairs = shuffled.permute(0, 2, 3, 1).unflatten(-1, (c // 2, 2))
    out.permute(0, 2, 3, 1).unflatten(-1, (2, c // 2)).copy_(pairs.transpose(-1, -2))
    return out


def _output_order(c: int, half: int, device):
    """For output channel o (after the shuffle): whether it is in the spatial branch, as a (1, C, 1, 1)
    mask, and the index j (C,) of its shared parameters: o is pre-shuffle channel
    ``p = (o % 2) C/2 + o // 2``, of branch ``(p // C'') % 2``, parameter ``p % C''``."""
    out_ch = torch.arange(c, device=device)
    pre = (out_ch % 2) * (c // 2) + out_ch // 2
    return ((pre // half) % 2 == 1).view(1, c, 1, 1), pre % half


def _params_in_output_order(params, j):
    """The six shared (C'', 1, 1) parameters gathered for every output channel, each (1, C, 1, 1)."""
    return tuple(t.flatten()[j].view(1, -1, 1, 1) for t in params)


def _channels_last_gate_coefficients(mean, rstd, params, spatial, j):
    """A and C of ``sigmoid(A xs + C)`` for every channel of the shuffled map, in the output's order,
    each (B, C, 1, 1): channel branch ``A = 0, C = cweight_j m + cbias_j``, spatial branch
    ``A = sweight_j gn.weight_j rstd, C = sweight_j gn.bias_j + sbias_j - A m`` (m, rstd: the channel's
    mean and 1 / sqrt(biased var + eps) over H, W)."""
    cw, cb, sw, sb, gw, gb = _params_in_output_order(params, j)
    a = torch.where(spatial, sw * gw * rstd, 0.)
    return a, torch.where(spatial, sw * gb + sb - a * mean, cw * mean + cb)


def _gated_residual_channels_last(shuffled, identity, params, eps, spatial, j, out):
    """``out = identity + xs * sigmoid(A xs + C)`` for the shuffled channels-last map xs, A and C from
    the mean and rstd (two-pass variance, its centred squares formed in ``out``) of every channel over
    H, W. Returns out and (mean, rstd, A, C)."""
    mean = shuffled.mean((2, 3), keepdim=True)
    centred = torch.sub(shuffled, mean, out=out)
    rstd = torch.rsqrt(centred.mul_(centred).mean((2, 3), keepdim=True) + eps)
    a, shift = _channels_last_gate_coefficients(mean, rstd, params, spatial, j)
    gate = torch.addcmul(shift, a, shuffled, out=out).sigmoid_()
    identity = identity.contiguous(memory_format=torch.channels_last)  # NCHW -> NHWC is the cheap way
    return torch.addcmul(identity, shuffled, gate, out=out), (mean, rstd, a, shift)


def _sa_residual_channels_last(x, identity, groups, params, eps, out):
    """``identity + SA(x)`` for a channels-last (NHWC) x, written into the channels-last ``out``, which may
    be x itself (x is only read by the shuffle, the first pass). Returns out, the per-channel values
    (mean, rstd, A, C) and the output order (spatial mask, parameter index j) for a backward.

    In NHWC the two halves of each group are runs of C'' channels inside every pixel's channel vector,
    too short to vectorise, so the work is done in the output's channel order instead: first the
    shuffle (``_shuffle_channels_last``), then every channel's gate in one full-width pass with
    per-channel coefficients gathered for that order (``_channels_last_gate_coefficients``), then
    ``out = identity + xs * sigmoid(A xs + C)`` (faster on CPU than copying to NCHW).
    """
    c = x.shape[1]
    spatial, j = _output_order(c, c // (2 * groups), x.device)
    shuffled = _shuffle_channels_last(x)
    out, per_channel = _gated_residual_channels_last(shuffled, identity, params, eps, spatial, j, out)
    return out, per_channel, spatial, j


class _SAResidualChannelsLastFn(torch.autograd.Function):
    """``identity + SA(x)`` for a channels-last x, with autograd: ``_sa_residual_channels_last`` (the result
    over x when ``own_x``, see ``residual_output``), keeping x and per-channel values; the backward works
    in the output's channel order, a chunk of samples at a time in small scratch buffers (the chunk of x
    shuffled again), and unshuffles each chunk of dx.

    Every channel is ``out = identity + xs s``, ``s = sigmoid(A xs + C)`` (A = 0 in the channel branch).
    With ``dz = g xs s (1 - s)`` and sums over H, W (``N = H W``): ``Cs = sum(dz)`` (= dL/dC),
    ``As = sum(dz xs) - Cs m`` (= dL/dA, C depending on A through ``-A m``), and

    * channel branch: ``dxs = g s + cweight Cs / N`` (C depends on xs through m);
    * spatial branch: ``dxs = g s + dz A + alpha (xs - m) - Cs A / N``,
      ``alpha = -As sweight gn.weight rstd^3 / N`` (through rstd; m's own path cancels);
    * parameters, summed over batch and the channels sharing them: ``d cweight = Cs m``,
      ``d cbias = Cs`` (channel branch); ``d sweight = As gn.weight rstd + Cs gn.bias``, ``d sbias = Cs``,
      ``d gn.weight = As sweight rstd``, ``d gn.bias = Cs sweight`` (spatial branch).
    """

    @staticmethod
    def forward(ctx, x, identity, own_x, groups, eps, *params):
        out = residual_output(ctx, x, own_x)  # x is read by the shuffle only (the backward rebuilds it)
        out, per_channel, spatial, j = _sa_residual_channels_last(x, identity, groups, params, eps, out)
        ctx.save_for_backward(x, *per_channel, *params)
        ctx.spatial, ctx.j = spatial, j
        return out

    @staticmethod
    def backward(ctx, grad):
        x, mean, rstd, a, shift, *params = ctx.saved_tensors
        spatial, j = ctx.spatial, ctx.j
        cw, _, sw, _, gw, gb = _params_in_output_order(params, j)
        n, hw = x.shape[2] * x.shape[3], (2, 3)
        g = grad.contiguous(memory_format=torch.channels_last)
        grad_x = backward_scratch(ctx, x)  # each chunk of x is shuffled into xs_buf before dx takes its place
        slices = chunk_slices(x)
        xs_buf, s_buf, z_buf = (torch.empty_like(x[slices[0]]) for _ in range(3))
        big_c, big_a = [], []
        for sl in slices:
            rows = sl.stop - sl.start
            g_, a_, m_, r_ = g[sl], a[sl], mean[sl], rstd[sl]
            xs = _shuffle_channels_last(x[sl], out=xs_buf[:rows])
            s = torch.addcmul(shift[sl], a_, xs, out=s_buf[:rows]).sigmoid_()
            dz = torch.ops.aten.sigmoid_backward(torch.mul(g_, xs, out=z_buf[:rows]), s, grad_input=z_buf[:rows])
            c_ = dz.sum(hw, keepdim=True)
            a_sum = torch.where(spatial, (dz * xs).sum(hw, keepdim=True) - c_ * m_, 0.)
            alpha = a_sum * sw * gw * r_.pow(3) * (-1.0 / n)
            beta = torch.where(spatial, -c_ * a_ / n - alpha * m_, cw * c_ / n)
            dxs = torch.addcmul(beta, dz, a_, out=dz).addcmul_(g_, s).addcmul_(xs, alpha)
            _unshuffle_channels_last_(dxs, grad_x[sl])
            big_c.append(c_)
            big_a.append(a_sum)
        big_c, big_a = torch.cat(big_c), torch.cat(big_a)  # (B, C, 1, 1); big_a is 0 in the channel branch
        channel = ~spatial
        per_channel = (big_c * mean * channel, big_c * channel, big_a * gw * rstd + big_c * gb * spatial,
                       big_c * spatial, big_a * sw * rstd, big_c * sw * spatial)
        # each shared parameter j gets the sums of the channels that use it (the mask picks the branch)
        grads = tuple(torch.zeros(p.numel(), dtype=v.dtype, device=v.device).index_add_(0, j, v.sum((0, 2, 3)))
                      .view_as(p) for v, p in zip(per_channel, params))
        return (grad_x, g, None, None, None) + grads


class _SAResidualFn(torch.autograd.Function):
    """``identity + SA(x)`` (statistics, both gates, shuffle, add) with a hand-written backward.

    Autograd of the plain expressions keeps the full-size sigmoid of the spatial half, scatters the
    gradients of the two halves' statistics into full-size zero tensors and copies the shuffle. Here
    the backward keeps x and per-channel values only, and works one chunk of samples at a time (the
    statistics are per sample): its products live in one small scratch buffer, and each half's
    gradient is written once, over x where x was rebuilt for this backward (``own_x``, see
    ``backward_scratch``). The identity's gradient is the output's. With ``s0 = sigmoid(c0)``,
    ``s1 = sigmoid(a1 x1 + c1)`` (recomputed), ``N = H W`` and sums over H, W:

    * channel half: ``k0 = dL/dc0 = sum(g0 x0) s0 (1 - s0)``, ``dx0 = g0 s0 + cweight k0 / N``;
    * spatial half: ``dz = g1 x1 s1 (1 - s1)``, ``C = sum(dz) = dL/dc1``,
      ``A = sum(dz x1) - C m1 = dL/da1`` (c1 depends on a1), ``dvar = -A sweight gn.weight rstd^3 / 2``,
      ``dm1 = -C a1``, ``dx1 = g1 s1 + dz a1 + dm1 / N + dvar 2 (x1 - m1) / N``;
    * parameters (summed over batch and groups): ``d cweight = k0 m0``, ``d cbias = k0``,
      ``d sweight = A gn.weight rstd + C gn.bias``, ``d sbias = C``, ``d gn.weight = A sweight rstd``,
      ``d gn.bias = C sweight``.
    """

    @staticmethod
    def forward(ctx, x, identity, own_x, groups, eps, *params):
        b, c, h, w = x.shape
        half = c // (2 * groups)
        c0, a1, c1, m0, m1, rstd = _sa_coefficients(x.view(b, groups, 2, half, h, w), params, eps)
        cw, _, sw, _, gw, gb = params
        ctx.save_for_backward(x, c0, a1, c1, m0, m1, rstd, cw, sw, gw, gb)
        ctx.groups, ctx.own_x = groups, own_x  # the output cannot take x's memory (shuffle); dx can
        return _sa_residual(x, identity, groups, (c0, a1, c1), torch.empty_like(identity))

    @staticmethod
    def backward(ctx, grad):
        x, c0, a1, c1, m0, m1, rstd, cw, sw, gw, gb = ctx.saved_tensors
        b, c, h, w = x.shape
        groups, half, n, hw = ctx.groups, c // (2 * ctx.groups), h * w, (-2, -1)
        c0, a1, c1, m0, m1, rstd = (t.view(b, 2, groups // 2, half, 1, 1) for t in (c0, a1, c1, m0, m1, rstd))
        g = grad.contiguous(memory_format=memory_format_of(x))
        grad_x = backward_scratch(ctx, x)
        s0 = c0.sigmoid()
        slices = chunk_slices(x)
        scratch = torch.empty_like(x[slices[0]])  # one chunk: its halves t0, t1 hold the products
        k0, big_c, big_a = [], [], []
        for sl in slices:
            x0, x1 = _halves(x[sl], groups, half, shuffled=False)
            g0, g1 = _halves(g[sl], groups, half, shuffled=True)
            gx0, gx1 = _halves(grad_x[sl], groups, half, shuffled=False)  # may be x0, x1 themselves
            t0, t1 = _halves(scratch[:sl.stop - sl.start], groups, half, shuffled=False)
            a1_, c1_, m1_, s0_ = a1[sl], c1[sl], m1[sl], s0[sl]
            # channel half: x0 is last read here (gx0 is free scratch from now on)
            k0_ = torch.ops.aten.sigmoid_backward(torch.mul(g0, x0, out=t0).sum(hw, keepdim=True), s0_)
            # spatial half: t1 holds s1, t0 holds dz
            s1 = scale_shift(x1, a1_, c1_, out=t1).sigmoid_()
            dz = torch.ops.aten.sigmoid_backward(torch.mul(g1, x1, out=t0), s1, grad_input=t0)
            c_ = dz.sum(hw, keepdim=True)
            a_ = torch.mul(dz, x1, out=gx0).sum(hw, keepdim=True) - c_ * m1_
            alpha = a_ * sw * gw * rstd[sl].pow(3) * (-1.0 / n)  # 2 * dvar / N
            scale_shift(dz, a1_, -c_ * a1_ / n - alpha * m1_, out=t0).addcmul_(g1, s1)
            torch.addcmul(t0, x1, alpha, out=gx1)
            scale_shift(g0, s0_, cw * k0_ / n, out=gx0)
            k0.append(k0_)
            big_c.append(c_)
            big_a.append(a_)
        k0, big_c, big_a = torch.cat(k0), torch.cat(big_c), torch.cat(big_a)
        # parameters: per-channel values summed over batch and groups
        red = (0, 1, 2)
        grads = ((k0 * m0).sum(red), k0.sum(red), (big_a * gw * rstd + big_c * gb).sum(red), big_c.sum(red),
                 (big_a * sw * rstd).sum(red), (big_c * sw).sum(red))
        return (grad_x, grad, None, None, None) + grads


def _layer_params(layer: ShuffleAttention):
    """(cweight, cbias, sweight, sbias, gn.weight, gn.bias), each viewed as (C'', 1, 1)."""
    half = layer.in_channels // (2 * layer.groups)
    return tuple([p.view(half, 1, 1) for p in (layer.cweight, layer.cbias, layer.sweight, layer.sbias,
                                               layer.gn.weight, layer.gn.bias)])


def sa_residual(layer: ShuffleAttention, x: torch.Tensor, identity: torch.Tensor, out_x: bool) -> torch.Tensor:
    """``identity + layer(x)`` written once, in the shuffled order (see the module docstring).

    ``out_x``: x's memory may be reused. In NCHW the shuffled result cannot overwrite x, but the
    backward writes dx over x (rebuilt for it); a channels-last x is read by its shuffle only, so the
    result is written over it.
    """
    params, groups, eps = _layer_params(layer), layer.groups, layer.gn.eps
    if x.dtype not in (torch.float32, torch.float64):
        # float16 / bfloat16 (autocast): the plain formula, whose GroupNorm autocast runs in float32; the
        # fused statistics in half precision overflow (rstd^3 in float16) or lose digits of the gate's
        # parameter gradients; the result keeps x's dtype, as the fused form does
        return (identity + layer(x)).to(x.dtype)
    if memory_format_of(x) == torch.channels_last:
        if needs_grad(x, identity, *params):
            return _SAResidualChannelsLastFn.apply(x, identity, out_x, groups, eps, *params)
        out = x if out_x else torch.empty_like(x)
        return _sa_residual_channels_last(x, identity, groups, params, eps, out)[0]
    if not (x.is_contiguous() and identity.is_contiguous()):
        # e.g. a channels-last bfloat16 x: the statistics and shuffle views read NCHW faster;
        # one copy each, and the block continues in NCHW
        if not x.is_contiguous():
            out_x = False  # autograd keeps the copy itself (no rebuild): the backward must not write over it
        x, identity = x.contiguous(), identity.contiguous()
    if groups % 2:
        return identity + layer(x)
    if needs_grad(x, identity, *params):
        return _SAResidualFn.apply(x, identity, out_x, groups, eps, *params)
    b, c, h, w = x.shape
    coefficients = _sa_coefficients(x.view(b, groups, 2, -1, h, w), params, eps)[:3]
    return _sa_residual(x, identity, groups, coefficients, torch.empty_like(identity))


register_fused_residual(ShuffleAttention, sa_residual)
