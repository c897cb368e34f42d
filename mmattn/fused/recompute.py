"""Keep a gate's input out of autograd's memory by rebuilding it from the BatchNorm input.

A gate placed after a BatchNorm (every attention block: ``x = bn3(conv3(...))``, then
``identity + x * gate(x)``) needs ``x`` in its backward, so autograd keeps one extra feature map per
block. But ``x`` is a per-channel affine function of the BN input ``u``, which the BN keeps for its own
backward anyway::

    x = u * scale + shift,   scale = weight / sqrt(var + eps),   shift = bias - mean * scale

with (mean, var) the running statistics (eval mode, e.g. mmdet's ``norm_eval=True``) or the batch
statistics of ``u`` (train mode). Inside :func:`bn_output_rebuild`, tensors saved for backward that
live in ``x``'s memory are stored as a recipe and rebuilt from ``u`` (one fused multiply-add; in train
mode plus the batch statistics, once) when the backward needs them. Values equal the stored ones up to
float rounding, so this is only for consumers whose backward multiplies and sums (the registered fused
forms), never for one that compares values (``amax``'s backward finds the maxima by equality: CBAM's
fused form therefore pools with ``max`` with indices, as the official ``max_pool2d`` does).

Since autograd then keeps nothing in ``x``'s memory, the fused gate may write its result over ``x``
(:func:`mmattn.fused.gated_residual` passes ``out_x=True``), as mmdet's Bottleneck adds its identity in
place to ``norm3``'s output: one feature map per block fewer to allocate than a new output.

Used only where it is exact: a plain ``nn.BatchNorm2d`` (in train mode: not synchronised, since the
batch statistics of one rank could not be recomputed), autograd active, not under ``torch.compile``
(whose partitioner already recomputes such element-wise ops). Callers skip it inside activation
checkpointing, which already drops everything.
"""
import contextlib
from typing import Optional

import torch
from torch import nn

from .kernels import var_mean


class _Recipe:
    """A saved tensor that is a view of the BN output, by geometry only (no reference to the data)."""
    __slots__ = ('source', 'size', 'stride', 'offset')

    def __init__(self, source, t):
        self.source, self.size, self.stride, self.offset = source, t.size(), t.stride(), t.storage_offset()


class _BNOutputSource:
    """Rebuilds the BN output ``x`` from the BN input ``u``; the affine is computed once, lazily."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, u: torch.Tensor, x: torch.Tensor):
        self.bn, self.u = bn, u
        self.ptr, self.nbytes = x.untyped_storage().data_ptr(), x.untyped_storage().nbytes()
        self.size, self.stride, self.dtype = x.size(), x.stride(), x.dtype
        self.use_batch_stats = bn.training or not bn.track_running_stats
        if not self.use_batch_stats:  # the running stats may change before the backward: copy them now
            self.affine = self._affine(bn.running_mean.detach().clone(), bn.running_var.detach().clone())

    def _affine(self, mean, var):
        bn = self.bn
        scale = torch.rsqrt(var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach()
        shift = -mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias.detach()
        view = (1, -1) + (1, ) * (self.u.dim() - 2)
        return scale.view(view).to(self.u.dtype), shift.view(view).to(self.u.dtype)

    def pack(self, t: torch.Tensor):
        return _Recipe(self, t) if t.untyped_storage().data_ptr() == self.ptr else t

    def rebuild(self) -> torch.Tensor:
        with torch.no_grad():
            if not hasattr(self, 'affine'):
                dims = (0, ) + tuple(range(2, self.u.dim()))
                var, mean = var_mean(self.u.detach(), dims)
                self.affine = self._affine(mean.flatten(), var.flatten())
            scale, shift = self.affine
            out = torch.empty_strided(self.size, self.stride, dtype=self.dtype, device=self.u.device)
            return torch.addcmul(shift, self.u.detach(), scale, out=out)


def _unpack(obj):
    if isinstance(obj, _Recipe):
        return obj.source.rebuild().as_strided(obj.size, obj.stride, obj.offset)
    return obj

def bn_output_rebuild(norm: nn.Module, u: torch.Tensor, x: torch.Tensor) -> Optional[contextlib.AbstractContextManager]:
    """A context in which autograd saves no tensor in ``x = norm(u)``'s memory but rebuilds it from ``u``,
    or None where that would not be exact (see the module docstring): then the caller keeps ``x``.

    Inside the context nothing autograd keeps lives in ``x``'s memory, so a result may be written over it.
    """
    if torch.compiler.is_compiling() or not (torch.is_grad_enabled() and x.requires_grad):
        return None
    batch_stats = norm.training or not norm.track_running_stats
    exact = isinstance(norm, nn.modules.batchnorm._BatchNorm) and (type(norm) is nn.BatchNorm2d or not batch_stats)
    whole = x.storage_offset() == 0 and x.untyped_storage().nbytes() == x.numel() * x.element_size()
    if not (exact and whole):
        return None
    source = _BNOutputSource(norm, u, x)
    return torch.autograd.graph.saved_tensors_hooks(source.pack, _unpack)
