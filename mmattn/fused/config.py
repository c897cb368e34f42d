"""The one switch of the fused (fast) implementations.

Each attention layer in :mod:`mmattn.layers` is the paper's formula. :mod:`mmattn.fused` holds faster
implementations of the same formulas (gate and residual add in one pass, hand-written backwards, the
BN-output rebuild). Whether the backbones use them is decided here, per device type:

* ``set_fused(True | False | None)`` forces them on or off for every device (``None``: per-device
  defaults again); ``fused(...)`` does the same for a ``with`` block;
* the environment variable ``MMATTN_FUSED`` (``1``/``0``; unset or ``auto``: defaults) is read when
  nothing was set by code;
* defaults: on where the fused paths were measured faster and tested equal (CPU); elsewhere
  (CUDA, MPS, ...) the plain formulas, until the device check has measured them there.

Tracing, scripting, ONNX export and ``torch.compile`` always take the plain formulas.
"""
import contextlib
import os
from typing import Optional

import torch

#: Device types whose fused paths are on by default (measured; see docs/speed.md).
DEFAULT_ON = frozenset({'cpu'})

_forced: Optional[bool] = None


def _env_setting() -> Optional[bool]:
    value = os.environ.get('MMATTN_FUSED', 'auto').strip().lower()
    if value in ('', 'auto'):
        return None
    if value in ('1', 'true', 'on', 'yes'):
        return True
    if value in ('0', 'false', 'off', 'no'):
        return False
    raise ValueError(f'MMATTN_FUSED={value!r}: use 1 (fused paths on), 0 (plain formulas) or auto '
                     f'(per-device defaults: on for {sorted(DEFAULT_ON)})')


def set_fused(enable: Optional[bool]) -> None:
    """Force the fused paths on (True) or off (False) on every device; None restores the defaults."""
    global _forced
    if enable is not None and not isinstance(enable, bool):
        raise TypeError(f'set_fused: enable must be True, False or None, got {enable!r}')
    _forced = enable


@contextlib.contextmanager
def fused(enable: Optional[bool]):
    """``with fused(False): ...`` runs the block with the plain formulas (restores the setting after)."""
    global _forced
    previous = _forced
    set_fused(enable)
    try:
        yield
    finally:
        _forced = previous


def tracing() -> bool:
    """True while torch traces, scripts, exports or compiles: those take the plain formulas."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling())


def fused_enabled(device_type: str) -> bool:
    """Whether the fused paths run for tensors on ``device_type`` now."""
    if tracing():
        return False
    setting = _forced if _forced is not None else _env_setting()
    return (device_type in DEFAULT_ON) if setting is None else setting
