"""Fused ``identity + gate(x)`` for the channel gates SE and ECA.

Both are ``x * s(mean_{H,W}(x))`` with a small network ``s`` on the pooled (B, C) vector, so both use
:class:`~mmattn.fused.kernels.ChannelGateResidual` with autograd (one pass over x in the forward, dx
written once in the backward) and one ``addcmul`` without it (written over x when allowed).
"""
import torch
import torch.nn.functional as F

from ..layers.eca import ECAModule
from ..layers.se import SEModule
from . import register_fused_residual
from .kernels import ChannelGateResidual, needs_grad, same_conv


def _se_gate(z, w1, b1, w2, b2):
    """SE's MLP on pooled z (B, C), functional (recomputed in the backward)."""
    return torch.sigmoid(F.linear(torch.relu(F.linear(z, w1, b1)), w2, b2))


def _eca_gate(z, weight):
    """ECA's 1-D conv over the channels of pooled z (B, C), functional; its input gradient is a forward
    convolution (:func:`~mmattn.fused.kernels.same_conv`)."""
    b, c = z.shape
    return same_conv(z.view(b, 1, c), weight).sigmoid().view(b, c)


def _channel_gate_residual(gate, x, identity, out_x, gate_fn, params):
    if needs_grad(x, identity, *[p for p in params if p is not None]):
        return ChannelGateResidual.apply(x, identity, out_x, gate_fn, *params)
    s = gate.attention_maps(x)['channel']
    return torch.addcmul(identity, x, s, out=x if out_x else None)


def se_residual(se: SEModule, x: torch.Tensor, identity: torch.Tensor, out_x: bool) -> torch.Tensor:
    """``identity + se(x)``."""
    fc1, fc2 = se.fc[0], se.fc[2]
    return _channel_gate_residual(se, x, identity, out_x, _se_gate, (fc1.weight, fc1.bias, fc2.weight, fc2.bias))


def eca_residual(eca: ECAModule, x: torch.Tensor, identity: torch.Tensor, out_x: bool) -> torch.Tensor:
    """``identity + eca(x)``."""
    return _channel_gate_residual(eca, x, identity, out_x, _eca_gate, (eca.conv.weight, ))


register_fused_residual(SEModule, se_residual)
register_fused_residual(ECAModule, eca_residual)
