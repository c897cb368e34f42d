"""Fused implementations of the attention layers' formulas: the one door to the speed.

The blocks of :mod:`mmattn.models` end with::

    out = gated_residual(gate, x, identity, overwrite_x=True, bn=norm3, bn_input=u)

which computes ``identity + gate(x)``. When the fused paths are enabled for ``x``'s device
(:func:`fused_enabled`: one switch, see :mod:`mmattn.fused.config`) and a fused form is registered for
``type(gate)`` (:data:`FUSED_RESIDUALS`), it runs that form; otherwise the plain ``identity + gate(x)``.
Modules that are not residual gates (PSA replaces a conv) go through :func:`fused_forward` the same way.
Nothing here changes a formula: every fused form is tested against the layer's own ``forward``.

A fused residual form is ``fn(gate, x, identity, out_x) -> Tensor`` computing ``identity + gate(x)`` as a
new (non-view) tensor, or in ``x``'s memory when ``out_x`` is True (the caller guarantees that autograd
keeps nothing there); it picks its own autograd Function when autograd records. A fused forward is
``fn(module, x) -> Tensor`` equal to ``module(x)``. Register them with :func:`register_fused_residual`
and :func:`register_fused_forward`; importing this package registers every form in it.
"""
from typing import Callable, Dict, Optional

import torch
from torch import nn

from .config import DEFAULT_ON, fused, fused_enabled, set_fused, tracing
from .kernels import needs_grad
from .recompute import bn_output_rebuild

#: layer class -> fused ``identity + gate(x)``; looked up by exact type (a subclass may change forward)
FUSED_RESIDUALS: Dict[type, Callable] = {}
#: module class -> fused ``module(x)``; looked up by exact type
FUSED_FORWARDS: Dict[type, Callable] = {}


def register_fused_residual(layer_cls: type, fn: Callable) -> None:
    """Declare ``fn(gate, x, identity, out_x)`` as the fused form of ``identity + layer_cls(...)(x)``."""
    FUSED_RESIDUALS[layer_cls] = fn


def register_fused_forward(module_cls: type, fn: Callable) -> None:
    """Declare ``fn(module, x)`` as the fused form of ``module_cls(...)(x)``."""
    FUSED_FORWARDS[module_cls] = fn


def gated_residual(gate: nn.Module, x: torch.Tensor, identity: torch.Tensor, *, overwrite_x: bool = False,
                   bn: Optional[nn.Module] = None, bn_input: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``identity + gate(x)``, fused where enabled; never a view.

    Args:
        gate: the attention layer (any module mapping x to a tensor of x's shape).
        x, identity: (B, C, H, W) maps.
        overwrite_x: the caller created ``x`` and never reads it again, so the result may take its
            memory (mmdet's Bottleneck adds its identity in place the same way).
        bn, bn_input: ``x == bn(bn_input)`` and ``gate`` is the only consumer of ``x``: lets autograd
            rebuild ``x`` from ``bn_input`` in the backward instead of keeping it, and the result then
            takes x's memory (omit under activation checkpointing, which keeps nothing anyway).
    """
    fn = FUSED_RESIDUALS.get(type(gate))
    if fn is None or not fused_enabled(x.device.type):
        return identity + gate(x)
    if not needs_grad(x, identity, *gate.parameters()):
        return fn(gate, x, identity, overwrite_x)
    rebuild = None
    if overwrite_x and bn is not None and bn_input is not None:
        rebuild = bn_output_rebuild(bn, bn_input, x)
    if rebuild is None:
        return fn(gate, x, identity, False)
    with rebuild:
        return fn(gate, x, identity, True)


def fused_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``, by its registered fused form where enabled for ``x``'s device."""
    fn = FUSED_FORWARDS.get(type(module))
    if fn is None or not fused_enabled(x.device.type):
        return module(x)
    return fn(module, x)


# the fused forms register themselves (they import mmattn.layers; the layers never import this package)
from . import cbam, psa, se_eca, sge, shuffle_attention  # noqa: E402,F401

__all__ = ['DEFAULT_ON', 'FUSED_FORWARDS', 'FUSED_RESIDUALS', 'fused', 'fused_enabled', 'fused_forward',
           'gated_residual', 'register_fused_forward', 'register_fused_residual', 'set_fused', 'tracing']
