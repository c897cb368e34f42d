"""Kernels and autograd helpers shared by the fused paths (plain torch).

Each kernel states the formula it computes; the tests compare it with the straightforward expression,
forward and backward.
"""
import math
from typing import Sequence

import torch


class _VarMean(torch.autograd.Function):
    """``torch.var_mean`` by the two-pass formula, with an analytic backward.

    ATen's CPU ``var_mean`` (Welford) is much slower than a plain mean plus a vector norm on the same
    data (docs/speed.md). The two-pass form
    ``var = ||x - mean||^2 / (N - correction)`` is as stable as Welford. The backward is written out so
    that autograd keeps only ``x`` (which the caller's gate product saves anyway) and ``mean``, not the
    centred temporary: ``d var / d x = 2 (x - mean) / (N - correction)``, ``d mean / d x = 1 / N``.
    """

    @staticmethod
    def forward(ctx, x, dims, correction):
        n = math.prod([x.shape[d] for d in dims])
        mean = x.mean(dims, keepdim=True)
        var = torch.linalg.vector_norm(x - mean, dim=dims, keepdim=True).square_().div_(n - correction)
        ctx.save_for_backward(x, mean)
        ctx.dims, ctx.n, ctx.correction = dims, n, correction
        return var, mean

    @staticmethod
    def backward(ctx, grad_var, grad_mean):
        x, mean = ctx.saved_tensors
        grad_var = torch.zeros_like(mean) if grad_var is None else grad_var
        grad_mean = torch.zeros_like(mean) if grad_mean is None else grad_mean
        grad_x = torch.addcmul(grad_mean / ctx.n, x - mean, grad_var * (2 / (ctx.n - ctx.correction)))
        return grad_x, None, None


def var_mean(x: torch.Tensor, dims: Sequence[int], correction: int = 0):
    """``torch.var_mean(x, dims, correction=correction, keepdim=True)``, fast on CPU (see ``_VarMean``).

    On CUDA ATen's fused kernel is already at the bandwidth floor and is used as is.
    """
    dims = tuple([d % x.dim() for d in dims])
    if x.is_cuda:
        return torch.var_mean(x, dims, correction=correction, keepdim=True)
    n = math.prod([x.shape[d] for d in dims])
    if n - correction <= 0:
        raise ValueError(f'var_mean: {n} element(s) over dims {dims} of a {tuple(x.shape)} tensor, '
                         f'need more than correction={correction}')
    return _VarMean.apply(x, dims, correction)


class _SameConv(torch.autograd.Function):
    """Stride-1 convolution with an odd kernel and 'same' padding ``k // 2``, no bias, groups 1
    (CBAM's 7x7 conv 2 -> 1, ECA's k-tap conv 1 -> 1), whose input gradient is a forward convolution.

    For ``y = conv(x, W)`` with W of shape (out, in, k...), the input gradient is the convolution of
    ``g = dL/dy`` with the kernel transposed (in, out, k...) and flipped along its spatial axes::

        dx = conv(g, flip(W^T)),    dW = convolution_backward(g, x, W)[weight]

    oneDNN's CPU input-gradient kernel for such tiny channel counts is many times slower than its
    forward kernel; the weight gradient is not, and stays ATen's.
    """

    @staticmethod
    def forward(ctx, x, weight):
        amp = autocast_state(x.device.type)
        if amp['enabled']:  # as autocast would run the conv; the backward then works in the same dtype
            x, weight = x.to(amp['dtype']), weight.to(amp['dtype'])
        ctx.save_for_backward(x, weight)
        return _conv_nd(x, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad, grad_x, grad_w = grad.to(x.dtype), None, None
        spatial = tuple(range(2, weight.dim()))
        if ctx.needs_input_grad[0]:
            grad_x = _conv_nd(grad, weight.transpose(0, 1).flip(spatial))
        if ctx.needs_input_grad[1]:
            nd = len(spatial)
            padding = [k // 2 for k in weight.shape[2:]]
            grad_w = torch.ops.aten.convolution_backward(grad, x, weight, None, [1] * nd, padding, [1] * nd,
                                                         False, [0] * nd, 1, [False, True, False])[1]
        return grad_x, grad_w


def _conv_nd(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    conv = {3: torch.nn.functional.conv1d, 4: torch.nn.functional.conv2d}[weight.dim()]
    return conv(x, weight, padding=[k // 2 for k in weight.shape[2:]])


def same_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv{1,2}d(x, weight, padding=k // 2)`` for an odd kernel, stride 1, no bias (see ``_SameConv``).

    The hand-written input gradient is used in eager mode with autograd; otherwise the plain op.
    """
    if any(k % 2 == 0 for k in weight.shape[2:]):
        raise ValueError(f'same_conv: kernel {tuple(weight.shape[2:])} must be odd along every axis')
    if use_custom_backward(x, weight):
        return _SameConv.apply(x, weight)
    return _conv_nd(x, weight)


def scale_shift(t: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, out: torch.Tensor = None) -> torch.Tensor:
    """``t * scale + shift`` (written into ``out`` when given) on a cache-resident chunk, for coefficients
    that broadcast against t, e.g. per-channel (B or 1, C, 1, 1) ones of an NCHW map.

    ATen's CPU ``addcmul`` vectorises its inner loop only when at most one operand is constant along
    it; with two (the scale and the shift of an NCHW map, constant along W) it runs a scalar loop,
    slower than a multiply and an in-place add on a cache-resident chunk. Those two vectorised passes
    are used then; where the coefficients vary along the innermost memory dim (NHWC maps) or off CPU,
    the one-pass ``addcmul`` is. (On a full map read from memory the single pass wins, so full-size
    maps keep ``addcmul``.)
    """
    inner = t if out is None else out
    constant_inner = all(c.dim() == 0 or c.shape[-1] == 1 for c in (scale, shift))
    if inner.device.type == 'cpu' and constant_inner and inner.dim() and inner.stride(-1) == 1 \
            and inner.shape[-1] > 1:
        return torch.mul(t, scale, out=out).add_(shift)
    return torch.addcmul(shift, t, scale, out=out)


def autocast_state(device_type: str) -> dict:
    """The autocast settings active now for ``device_type``, for a backward that recomputes part of its
    forward to run it as the forward did: ``with torch.autocast(**state)`` (what ``torch.amp.custom_fwd``
    and ``custom_bwd`` do, for any device type)."""
    return dict(device_type=device_type, enabled=torch.is_autocast_enabled(device_type),
                dtype=torch.get_autocast_dtype(device_type))


def needs_grad(*tensors: torch.Tensor) -> bool:
    """True when autograd records operations on any of ``tensors`` (grad mode on, one requires grad)."""
    return torch.is_grad_enabled() and any([t.requires_grad for t in tensors])


def use_custom_backward(*tensors: torch.Tensor) -> bool:
    """Whether a layer takes its hand-written autograd Function: autograd needs ``tensors`` and this is
    eager mode (under ``torch.compile`` the layers use their plain formulas, which inductor fuses)."""
    return not torch.compiler.is_compiling() and needs_grad(*tensors)


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a 4-D NHWC-contiguous tensor that is not NCHW-contiguous, else
    ``torch.contiguous_format`` (to allocate gradients in their input's layout)."""
    nhwc = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    return torch.channels_last if nhwc else torch.contiguous_format


def residual_output(ctx, x: torch.Tensor, own_x: bool) -> torch.Tensor:
    """Where a gate's autograd Function writes ``identity + gate(x)``: over x itself when ``own_x`` (the
    caller checked that autograd keeps nothing in x's memory but rebuilds what it saves of x, see
    :func:`mmattn.fused.gated_residual`; x is marked dirty), else into a new tensor.
    Records ``own_x`` for :func:`backward_scratch`."""
    ctx.own_x = own_x
    if own_x:
        ctx.mark_dirty(x)
        return x
    return torch.empty_like(x)


def backward_scratch(ctx, x: torch.Tensor) -> torch.Tensor:
    """A full-size buffer like the saved ``x`` for a gate's backward: ``x`` itself where it is a copy
    rebuilt for this backward alone (``own_x`` in :func:`residual_output`), else a new tensor."""
    return x if ctx.own_x else torch.empty_like(x)


#: Bytes of one chunk of :func:`chunk_slices` (CPU): about an L2 cache.
CHUNK_BYTES = 1 << 20


def chunk_slices(t: torch.Tensor):
    """Slices of ``t``'s first dim of about :data:`CHUNK_BYTES` each (at least one row) on CPU; on other
    devices, and for an empty dim, the whole dim in one slice (their caching allocators and bandwidth
    favour full-size work).

    For a backward whose statistics are per sample: worked chunk by chunk, its temporaries live in one
    small scratch buffer that stays in cache, instead of full-size maps that are read back from memory
    and, on CPU above glibc's mmap threshold, page-faulted in anew at every call.
    """
    rows, step = t.shape[0], max(1, t.shape[0])
    if t.device.type == 'cpu' and rows:
        step = max(1, CHUNK_BYTES // max(1, t[0].numel() * t.element_size()))
    return [slice(lo, min(lo + step, rows)) for lo in range(0, max(rows, 1), step)]


def small_graph_grads(output: torch.Tensor, inputs: Sequence[torch.Tensor], params: Sequence, grad_output):
    """Gradients of a gate's small network (kept or rebuilt inside a custom backward) w.r.t. its
    ``inputs`` and those ``params`` that require grad: ``(input grads, one grad or None per param)``,
    params in their order (None also where the network does not use a param)."""
    wanted = [p for p in params if p is not None and p.requires_grad]
    # (retain_graph: a kept graph dies with its ctx; a retained outer graph may be differentiated again;
    # under autocast the small network's output may be in a lower precision than the feature maps)
    grads = torch.autograd.grad(output, [*inputs, *wanted], grad_output.to(output.dtype), retain_graph=True,
                                allow_unused=True)
    d_wanted = iter(grads[len(inputs):])
    return grads[:len(inputs)], [next(d_wanted) if p is not None and p.requires_grad else None for p in params]


class ChannelGateResidual(torch.autograd.Function):
    """``identity + x * s(mean_{H,W}(x))`` for a small channel-gate network ``s = gate_fn(z, *params)``
    mapping (B, C) to (B, C) (SE's MLP, ECA's 1-D conv), with a backward that writes dx in one pass.

    Autograd of the plain expressions materialises two full-size gradients of x (through the product
    and through the mean) and adds them. With ``N = H W`` and ``ds = sum_{H,W}(g x)`` (the small
    network's backward, recomputed from the saved pooled z, gives ``dz`` and the parameter grads)::

        dx = g * s + dz / N,    d identity = g

    Apply as ``ChannelGateResidual.apply(x, identity, own_x, gate_fn, *params)``; keeps x, z and
    params; ``own_x``: the result is written over x, and the backward's rebuilt x is its scratch
    (see ``residual_output``).
    """

    @staticmethod
    def forward(ctx, x, identity, own_x, gate_fn, *params):
        z = x.mean((2, 3))
        ctx.save_for_backward(x, z)
        ctx.gate_fn, ctx.params, ctx.amp = gate_fn, params, autocast_state(x.device.type)
        s = gate_fn(z, *params)[:, :, None, None]
        return torch.addcmul(identity, x, s, out=residual_output(ctx, x, own_x))

    @staticmethod
    def backward(ctx, grad):
        x, z = ctx.saved_tensors
        with torch.enable_grad(), torch.autocast(**ctx.amp):  # the small network as in the forward
            z = z.detach().requires_grad_()
            s = ctx.gate_fn(z, *ctx.params)
        buf = backward_scratch(ctx, x)  # g x, then dx
        (d_z, ), d_params = small_graph_grads(s, [z], ctx.params, torch.mul(grad, x, out=buf).sum((2, 3)))
        n = x.shape[2] * x.shape[3]
        grad_x = torch.addcmul((d_z / n)[:, :, None, None], grad, s.detach()[:, :, None, None], out=buf)
        return (grad_x, grad, None, None, *d_params)
