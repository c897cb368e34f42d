"""Fused implementations of the attention layers' formulas: the one door to the speed.

The blocks of :mod:`mmattn.models` (and the pure-torch network of the device check) end with::

    out = gated_residual(gate, x, identity, overwrite_x=True, bn=norm3, bn_input=u)

which computes ``identity + gate(x)``. When the fused paths are enabled for ``x``'s device
(:func:`fused_enabled`: one switch, see :mod:`mmattn.fused.config`) and a fused form is registered for
``type(gate)`` (:data:`FUSED_RESIDUALS`), it runs that form; otherwise the plain ``identity + gate(x)``.
Nothing here changes a formula: every fused form is tested against the layer's own ``forward``.

A fused residual form is ``fn(gate, x, identity, out_x) -> Tensor`` computing ``identity + gate(x)``;
``out_x=True`` means the result may be written into ``x``'s memory (autograd keeps nothing of it).
It chooses its own autograd Function when autograd is recording. Register one with
:func:`register_fused_residual`.
"""
from typing import Callable, Dict, Optional

import torch
from torch import nn

from .config import DEFAULT_ON, fused, fused_enabled, set_fused, tracing

#: layer class -> fused ``identity + gate(x)``; looked up by exact type (a subclass may change forward)
FUSED_RESIDUALS: Dict[type, Callable] = {}


def register_fused_residual(layer_cls: type, fn: Callable) -> None:
    """Declare ``fn`` as the fused form of ``identity + layer_cls(...)(x)``."""
    FUSED_RESIDUALS[layer_cls] = fn


def gated_residual(gate: nn.Module, x: torch.Tensor, identity: torch.Tensor, *, overwrite_x: bool = False,
                   bn: Optional[nn.Module] = None, bn_input: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``identity + gate(x)``, fused where enabled.

    Args:
        gate: the attention layer (any module mapping x to a tensor of x's shape).
        x, identity: (B, C, H, W) maps.
        overwrite_x: the caller created ``x`` and never reads it again, so the result may take its
            memory (mmdet's Bottleneck adds its identity in place the same way).
        bn, bn_input: ``x == bn(bn_input)``; lets autograd rebuild ``x`` from ``bn_input`` in the
            backward instead of keeping it (omit under activation checkpointing).
    """
    fn = FUSED_RESIDUALS.get(type(gate))
    if fn is None or not fused_enabled(x.device.type):
        return identity + gate(x)
    raise NotImplementedError  # filled in by the fused package (see module docstring)


__all__ = ['DEFAULT_ON', 'FUSED_RESIDUALS', 'fused', 'fused_enabled', 'gated_residual',
           'register_fused_residual', 'set_fused', 'tracing']
