"""Load mmengine checkpoints under ``torch.load(weights_only=True)``.

Since PyTorch 2.6, ``torch.load`` defaults to ``weights_only=True`` and only
unpickles tensors, containers and globals that were allow-listed with
:func:`torch.serialization.add_safe_globals`. mmengine 0.10.x checkpoints also
pickle the message hub (``HistoryBuffer`` objects holding numpy arrays and a
dict of their statistics methods, which pickle as ``getattr(HistoryBuffer,
'min')``), numpy scalars, dtypes and the ``Counter`` of ``MultiStepLR``
milestones, so
``--resume``, ``load_from`` and ``tools/test.py CONFIG CHECKPOINT`` fail with
"Unsupported global: ...".

:func:`register_checkpoint_safe_globals` allow-lists exactly these globals. It
does not turn ``weights_only`` off: any other global in a checkpoint is still
refused.
"""
import collections
from typing import Any, List, Tuple

import numpy as np
import torch

_REGISTERED: List[str] = []


def _numpy_dtype_classes() -> List[type]:
    """The dtype classes (``numpy.dtypes.Float64DType`` ...) of numpy 2.x.

    Only plain numeric, bool and string dtypes are allowed; the ``object``
    dtype is deliberately left out because it unpickles arbitrary objects.
    """
    kinds = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
             'uint32', 'uint64', 'float16', 'float32', 'float64',
             'longdouble', 'complex64', 'complex128', 'clongdouble', 'str',
             'bytes')
    classes = []
    for kind in kinds:
        cls = type(np.dtype(kind))
        # numpy 1.x: every dtype is an instance of ``np.dtype`` itself.
        if cls is not np.dtype and cls not in classes:
            classes.append(cls)
    return classes


def _numpy_reconstructors() -> List[Tuple[Any, str]]:
    """``_reconstruct`` and ``scalar`` under both numpy 1.x and 2.x names.

    numpy 2.x pickles them as ``numpy._core.multiarray.*``; checkpoints
    written with numpy 1.x name them ``numpy.core.multiarray.*``. Both names
    are mapped to the functions of the installed numpy.
    """
    try:
        from numpy._core import multiarray  # numpy >= 2.0
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    entries = []
    for func_name in ('_reconstruct', 'scalar'):
        func = getattr(multiarray, func_name)
        for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
            entries.append((func, f'{module}.{func_name}'))
    return entries


def checkpoint_safe_globals() -> List[Any]:
    """The globals (or ``(global, name)`` pairs) mmengine checkpoints need."""
    from mmengine.logging.history_buffer import HistoryBuffer

    safe: List[Any] = [
        # MessageHub.state_dict()['log_scalars'] values.
        HistoryBuffer,
        # HistoryBuffer._statistics_methods holds HistoryBuffer.min etc.,
        # pickled as getattr(HistoryBuffer, 'min'). The weights-only
        # unpickler calls only allow-listed callables, so getattr can only
        # look up attributes of allow-listed objects and its results are
        # never called.
        getattr,
        # MultiStepParamScheduler.milestones.
        collections.Counter,
        np.ndarray,
        np.dtype,
    ]
    safe.extend(_numpy_reconstructors())
    safe.extend(_numpy_dtype_classes())
    return safe


def register_checkpoint_safe_globals() -> List[str]:
    """Allow-list the globals of mmengine checkpoints for ``torch.load``.

    Call it once before a checkpoint is loaded (``tools/train.py``,
    ``tools/test.py`` and ``import mmattn.models`` do). It is idempotent and
    a no-op on PyTorch < 2.4, which has no allow-list.

    Returns:
        list[str]: The qualified names that are allow-listed.
    """
    if _REGISTERED:
        return list(_REGISTERED)
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:  # pragma: no cover - torch < 2.4
        return []
    safe = checkpoint_safe_globals()
    add_safe_globals(safe)
    for item in safe:
        if isinstance(item, tuple):
            _REGISTERED.append(item[1])
        else:
            _REGISTERED.append(f'{item.__module__}.{item.__qualname__}')
    return list(_REGISTERED)
