"""Fused ``identity + SGE(x)`` (:class:`~mmattn.layers.SpatialGroupEnhance`): the gate and the residual add
in one pass over the feature map, with a hand-written backward.

Memory layouts: every map is handled as a (B, G, C/G, HW) view (``_grouped``), so NCHW and
channels-last (NHWC) inputs run the same expressions; only the sums over a group's channels and over
positions change form with the layout (batched matrix products in NCHW; in NHWC, where those would copy
x, products summed in place). A channels-last block stays channels-last.

Zero spread: where a group's score is constant over H, W (e.g. an all-zero input with mmdet's
``zero_init_residual``), the official ``t.std()`` passes no gradient through the std (torch's std
backward is 0 where the std is 0); the backward here does the same.
"""
import math

import torch

from ..layers.sge import SpatialGroupEnhance, check_spatial_size
from . import register_fused_residual
from .kernels import memory_format_of, needs_grad, residual_output, var_mean


def _grouped(t: torch.Tensor, groups: int) -> torch.Tensor:
    """A (B, C, H, W) map as a (B, G, C/G, HW) view, for NCHW and channels-last (NHWC) memory alike (in
    NHWC the view's C/G dim is the contiguous one, in NCHW its HW dim)."""
    return t.flatten(2).unflatten(1, (groups, -1))


def _channel_sum(t: torch.Tensor, nhwc: bool, out: torch.Tensor = None) -> torch.Tensor:
    """``t.sum(2, keepdim=True)`` of a grouped (B, G, C/G, HW) map. In NHWC the C/G summed channels of
    each position are a short contiguous run, which ATen's reduction walks element by element; a
    matrix-vector product with ones reads them in runs. The NHWC result (B, G, 1, HW) lies in (B, HW, G)
    memory; ``out``: a (B, HW, G) tensor for it (NHWC).
    """
    if not nhwc:
        return t.sum(2, keepdim=True)
    pixels = t.permute(0, 3, 1, 2)  # (B, HW, G, C/G), contiguous
    return torch.matmul(pixels, t.new_ones(t.shape[2]), out=out).transpose(1, 2).unsqueeze(2)


def _dot_hw(a: torch.Tensor, b: torch.Tensor, nhwc: bool, buf: torch.Tensor = None) -> torch.Tensor:
    """``(a * b).sum(3, keepdim=True)`` for grouped maps, ``b`` of one channel per group (B, G, 1, HW).
    NCHW: one batched matrix-vector product; NHWC (where the batched product would copy): the product,
    into ``buf`` when given, then the sum."""
    if not nhwc:
        return torch.matmul(a, b.transpose(2, 3))
    return torch.mul(a, b, out=buf).sum(3, keepdim=True)


#: Bytes of x per chunk of the NHWC score's product (CPU): whole samples up to this size (a 224 input's
#: stage-1 sample is 3.2 MB), position ranges of larger ones (detection sizes); larger than
#: ``kernels.CHUNK_BYTES`` because fewer Python iterations paid off at stages 3-4.
SCORE_CHUNK_BYTES = 4 << 20


def _score_chunks(shape, element_size: int):
    """(sample slice, position slice) pairs covering a (B, G, C/G, HW) map in chunks of about
    ``SCORE_CHUNK_BYTES``: several whole samples each, or one sample's positions in ranges."""
    b, groups, per_group, n = shape
    step = max(1, SCORE_CHUNK_BYTES // (groups * per_group * element_size))  # positions per chunk
    if step >= n:
        rows = step // n
        return [(slice(i, min(i + rows, b)), slice(0, n)) for i in range(0, b, rows)]
    return [(slice(i, i + 1), slice(p, min(p + step, n))) for i in range(b) for p in range(0, n, step)]


def _score(xg: torch.Tensor, mean: torch.Tensor, nhwc: bool) -> torch.Tensor:
    """sum_c x_c * mean(x_c) per group and position, (B, G, 1, HW). NCHW: one batched matrix-vector
    product. NHWC (where that product would copy x): the product x * mean, summed over each group's
    channels (``_channel_sum``), without autograd chunk by chunk (``_score_chunks``) through one small
    scratch buffer instead of a second full-size map; the result lies in (B, HW, G) memory."""
    if not nhwc:
        return torch.matmul(mean.transpose(2, 3), xg)
    if needs_grad(xg, mean):
        return _channel_sum(xg * mean, nhwc)
    b, groups, per_group, n = xg.shape
    score = xg.new_empty(b, n, groups)
    chunks = _score_chunks(xg.shape, xg.element_size())
    rows, positions = chunks[0][0].stop - chunks[0][0].start, chunks[0][1].stop
    scratch = xg.new_empty(rows, positions, groups, per_group).permute(0, 2, 3, 1)  # laid out like xg
    for samples, span in chunks:
        chunk = xg[samples, :, :, span]
        product = torch.mul(chunk, mean[samples], out=scratch[:chunk.shape[0], :, :, :chunk.shape[3]])
        _channel_sum(product, nhwc, out=score[samples, span])
    return score.transpose(1, 2).unsqueeze(2)


def _gate(score: torch.Tensor, mu: torch.Tensor, k: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """sigmoid(k (score - mu) + bias), folded into one affine per group, ``k = weight / (std + eps)``."""
    return torch.addcmul(bias - k * mu, score, k).sigmoid_()


def _score_stats(score: torch.Tensor):
    """Mean and unbiased std (N - 1, as the official code) of the score over HW, each (B, G, 1, 1)."""
    var, mean = var_mean(score, dims=(3, ), correction=1)
    return mean, var.sqrt()


def _gate_from_score_(score: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """sigmoid(weight * (score - mean) / (std + eps) + bias) over HW, written over ``score`` (without
    autograd): centred, scaled, shifted and passed through the sigmoid in place."""
    mean = score.mean(3, keepdim=True)
    centred = score.sub_(mean)
    std = torch.linalg.vector_norm(centred, dim=3, keepdim=True).div_(math.sqrt(score.shape[3] - 1))
    return torch.addcmul(bias, centred, weight / (std + eps), out=centred).sigmoid_()


class _SGEResidualFn(torch.autograd.Function):
    """``identity + SGE(x)`` with a hand-written backward: two full-size passes for dx (in NHWC a third,
    for ``sum_p(x * ds)``) and three maps of the score's size, where autograd of the plain expressions
    adds up three full-size gradients of x and keeps or rebuilds about ten score-size temporaries for the
    normalisation.

    Per group and position p (``N = HW``), with ``m`` the channel means (B, G, C/G, 1), the score
    ``s = m^T x``, its mean ``mu`` and unbiased std ``sd`` over p, ``c = s - mu``, ``k = weight / (sd + eps)``
    and ``gate = sigmoid(k c + bias)``; with ``g`` the output gradient and sums over p::

        dt     = sum_C(g * x) * gate * (1 - gate)          (the gradient of the sigmoid's input)
        d bias = sum(dt),   dk = sum(dt c),   d weight = dk / (sd + eps)
        ds     = k (dt - mean(dt)) + alpha c,   alpha = -dk k / ((sd + eps) sd (N - 1))  (0 where sd = 0)
        dx     = g * gate + m * ds + sum_p(x * ds) / N     (through the product, the score and m)

    (``alpha c`` is the path through ``sd``; the mean's gradient removes the mean of both terms, and
    ``c`` has mean 0.) Parameter gradients are summed over the batch. Keeps x, m, the score and its
    mean and std. Apply as ``_SGEResidualFn.apply(x, identity, own_x, weight, bias, groups, eps)``;
    ``own_x``: write the result over x (see ``residual_output``).
    """

    @staticmethod
    def forward(ctx, x, identity, own_x, weight, bias, groups, eps):
        nhwc = memory_format_of(x) == torch.channels_last  # identity in x's layout (the caller's job)
        xg = _grouped(x, groups)
        mean = xg.mean(3, keepdim=True)
        with torch.autocast(x.device.type, enabled=False):  # the score in x's precision, as the backward
            score = _score(xg, mean, nhwc)
        mu, sd = _score_stats(score)
        gate = _gate(score, mu, weight / (sd + eps), bias)
        ctx.save_for_backward(x, mean, score, mu, sd, weight, bias)
        ctx.groups, ctx.eps, ctx.nhwc = groups, eps, nhwc
        out = residual_output(ctx, x, own_x)
        torch.addcmul(_grouped(identity, groups), xg, gate, out=_grouped(out, groups))
        return out

    @staticmethod
    def backward(ctx, grad):
        x, mean, score, mu, sd, weight, bias = ctx.saved_tensors
        groups, nhwc = ctx.groups, ctx.nhwc
        n = x.shape[2] * x.shape[3]
        xg = _grouped(x, groups)
        g = _grouped(grad.contiguous(memory_format=memory_format_of(x)), groups)
        sd_eps = sd + ctx.eps
        k = weight / sd_eps
        gate = _gate(score, mu, k, bias)
        grad_x = torch.empty_like(x)
        buf = _grouped(grad_x, groups)  # g x, then (NHWC) x d_score, then dx
        dt = _channel_sum(torch.mul(g, xg, out=buf), nhwc)  # d gate, then dt, then ds
        torch.ops.aten.sigmoid_backward(dt, gate, grad_input=dt)
        centred = score - mu
        d_bias = dt.sum(3, keepdim=True)
        dk = _dot_hw(dt, centred, nhwc)
        # the path through the std; none where the std is 0, as torch's std backward (the official code)
        alpha = (dk * k / (sd_eps * sd * (1 - n))).masked_fill_(sd == 0, 0)
        d_score = torch.addcmul(-k * d_bias / n, dt, k, out=dt).addcmul_(centred, alpha)
        torch.addcmul(_dot_hw(xg, d_score, nhwc, buf).div_(n), mean, d_score, out=buf).addcmul_(g, gate)
        d_weight = (dk / sd_eps).sum(0, keepdim=True)
        return grad_x, grad, None, d_weight, d_bias.sum(0, keepdim=True), None, None


def sge_residual(layer: SpatialGroupEnhance, x: torch.Tensor, identity: torch.Tensor, out_x: bool) -> torch.Tensor:
    """``identity + layer(x)`` in one pass over the feature map; ``out_x``: the result may take x's memory.

    With autograd :class:`_SGEResidualFn`; without, the gate is formed over the score in place. A
    channels-last x is worked in channels-last (the block stays NHWC), other layouts in NCHW.
    """
    check_spatial_size(x, type(layer).__name__)
    nhwc = memory_format_of(x) == torch.channels_last
    if nhwc:
        identity = identity.contiguous(memory_format=torch.channels_last)  # NCHW -> NHWC: the cheap way
    elif not (x.is_contiguous() and identity.is_contiguous()):
        if not x.is_contiguous():
            out_x = False  # autograd keeps the copy itself (no rebuild): the result must not overwrite it
        x, identity = x.contiguous(), identity.contiguous()
    if needs_grad(x, identity, layer.weight, layer.bias):
        return _SGEResidualFn.apply(x, identity, out_x, layer.weight, layer.bias, layer.groups, layer.eps)
    xg = _grouped(x, layer.groups)
    score = _score(xg, xg.mean(3, keepdim=True), nhwc)
    gate = _gate_from_score_(score, layer.weight, layer.bias, layer.eps)
    out = x if out_x else torch.empty_like(x)
    torch.addcmul(_grouped(identity, layer.groups), xg, gate, out=_grouped(out, layer.groups))
    return out


register_fused_residual(SpatialGroupEnhance, sge_residual)
