"""Fused PSA forward (EPSANet's conv2): the branch convolutions in channels-last on CPU, and the
weighting in place of the stacked branch maps when autograd does not need them.

oneDNN's CPU grouped convolutions with few channels per group (PSA's 2..16) are much faster in NHWC
than in NCHW, forward and backward (docs/speed.md); the result is the same tensor in another layout.
"""
import torch

from ..layers.psa import PSAModule
from . import register_fused_forward
from .kernels import needs_grad


def psa_forward(psa: PSAModule, x: torch.Tensor) -> torch.Tensor:
    """``psa(x)``."""
    if x.device.type == 'cpu':
        x = x.contiguous(memory_format=torch.channels_last)
    feats, scale = psa.branches_and_scale(x)
    b, s, c, h, w = feats.shape
    out = feats * scale if needs_grad(feats, scale) else feats.mul_(scale)
    return out.reshape(b, s * c, h, w)


register_fused_forward(PSAModule, psa_forward)
