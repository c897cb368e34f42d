"""Load checkpoints without ever running code from them.

Since PyTorch 2.6, ``torch.load`` defaults to ``weights_only=True``: it unpickles tensors, containers,
numbers and strings, and any other global only if it is allow-listed. mmengine 0.10.x checkpoints also
pickle the message hub (``HistoryBuffer`` objects holding numpy arrays), numpy scalars and dtypes, and
``HistoryBuffer``'s table of statistics methods, which pickle as ``getattr(HistoryBuffer, 'min')``.

Allow-listing ``builtins.getattr`` itself would open the door to code execution: from any allow-listed
class a pickle can walk to a function's ``__globals__``, then ``__builtins__['eval']``, and call it
through torch's own rebuild functions. So ``builtins.getattr`` is never allow-listed here. Instead, the
name ``builtins.getattr`` in a checkpoint is bound to :func:`_history_buffer_statistic`, which hands out
exactly the four statistics methods of ``HistoryBuffer`` and refuses everything else.

The allow-list is active only inside :func:`mmengine_checkpoint_globals` (a context manager):
:func:`load_checkpoint_file` uses it, and :func:`safe_checkpoint_loading`, which the tools wrap their
runs in, also routes mmengine's loading of local files (``--resume``, ``load_from``, ``Pretrained``)
through :func:`load_checkpoint_file`, so a bad file is reported as such, and its downloads of
``http(s)://`` (``open-mmlab://`` ...) checkpoints through :func:`load_url_weights_only` (mmengine's own
download unpickles with ``weights_only=False``). Importing mmattn changes nothing process-wide.
"""
import os.path as osp
import pickle
import zipfile
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np
import torch

#: The statistics methods ``HistoryBuffer`` pickles by reference (``_set_default_statistics``).
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


class CheckpointLoadError(RuntimeError):
    """A checkpoint file cannot be loaded: missing, empty, truncated, not a checkpoint, or refused
    because unpickling it would need globals that could run code."""


def _history_buffer_statistic(owner: Any, name: Any):
    """Stand-in for ``builtins.getattr`` while a checkpoint is unpickled.

    Returns ``HistoryBuffer.<name>`` for the four statistics methods and raises for any other
    ``(owner, name)``: a checkpoint cannot reach any other attribute of anything.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is HistoryBuffer and isinstance(name, str) and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    owner_name = owner.__qualname__ if isinstance(owner, type) else type(owner).__qualname__
    raise pickle.UnpicklingError(
        f'the checkpoint asks for attribute {str(name)[:80]!r} of {owner_name}; only '
        f'HistoryBuffer.{{{", ".join(HISTORY_BUFFER_STATISTICS)}}} may be looked up while loading '
        '(anything else could reach code)')


def _numpy_dtype_classes() -> List[type]:
    """The dtype classes (``numpy.dtypes.Float64DType`` ...) of numpy 2.x.

    Only plain numeric, bool and string dtypes; the ``object`` dtype is left out on purpose.
    """
    kinds = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
             'float16', 'float32', 'float64', 'longdouble', 'complex64', 'complex128', 'clongdouble',
             'str', 'bytes')
    classes = []
    for kind in kinds:
        cls = type(np.dtype(kind))
        # numpy 1.x: every dtype is an instance of ``np.dtype`` itself.
        if cls is not np.dtype and cls not in classes:
            classes.append(cls)
    return classes


def _numpy_reconstructors() -> List[Tuple[Any, str]]:
    """``_reconstruct`` and ``scalar`` under their numpy 1.x and 2.x names, bound to the installed
    numpy's functions."""
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
    """The allow-list for mmengine checkpoints: data types and constructors only, plus the name
    ``builtins.getattr`` bound to :func:`_history_buffer_statistic` (never ``getattr`` itself)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    safe: List[Any] = [
        HistoryBuffer,  # MessageHub.state_dict()['log_scalars'] values
        (_history_buffer_statistic, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
    ]
    safe.extend(_numpy_reconstructors())
    safe.extend(_numpy_dtype_classes())
    return safe


def checkpoint_safe_global_names() -> List[str]:
    """The qualified names the allow-list accepts in a checkpoint."""
    names = []
    for item in checkpoint_safe_globals():
        names.append(item[1] if isinstance(item, tuple) else f'{item.__module__}.{item.__qualname__}')
    return names


@contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Allow-list :func:`checkpoint_safe_globals` for ``torch.load(weights_only=True)`` inside the
    ``with`` block only.

    ``HistoryBuffer.__setstate__`` writes the unpickled statistics methods into the class-wide table;
    entries a checkpoint changed are put back on exit, so a crafted file cannot redirect them.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    table = HistoryBuffer._statistics_methods
    before = dict(table)
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            yield
    finally:
        for key, value in list(table.items()):
            if before.get(key) is value:
                continue
            if key in HISTORY_BUFFER_STATISTICS:
                table[key] = getattr(HistoryBuffer, key)
            elif key in before:
                table[key] = before[key]
            else:
                del table[key]


def _drop_planted_statistics(obj: Any) -> Any:
    """Remove a statistics table from the loaded ``HistoryBuffer`` objects in ``obj`` (returned).

    ``HistoryBuffer.__setstate__`` copies every key of the pickled state into the instance, so a
    crafted state holding ``_statistics_methods`` would give that buffer its own table (shadowing the
    class's), whose entries mmengine's logging calls long after loading, outside
    :func:`mmengine_checkpoint_globals`. A buffer mmengine pickled has no such instance attribute.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    stack, seen = [obj], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, HistoryBuffer):
            vars(item).pop('_statistics_methods', None)
            vars(item).pop('statistics_methods', None)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return obj


def describe_file_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be a checkpoint written by ``torch.save`` (None if it looks like one).

    Cheap checks only: existence, size, the file's magic bytes and, for zip archives (the format of
    ``torch.save`` since PyTorch 1.6), the archive's directory and CRCs.
    """
    if not osp.exists(path):
        return 'does not exist'
    if osp.isdir(path):
        return 'is a directory, not a checkpoint file'
    size = osp.getsize(path)
    if size == 0:
        return 'is empty (0 bytes), as a run killed while saving it leaves it'
    with open(path, 'rb') as f:
        head = f.read(4)
    if head.startswith(b'PK'):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            return f'is truncated or corrupt ({size} bytes; the zip archive cannot be read: {err})'
        if bad is not None:
            return f'is corrupt ({size} bytes; member {bad} fails its CRC check)'
        return None
    if head[:1] == b'\x80':
        return None  # a pickle: the legacy (pre-1.6) torch.save format
    return (f'is not a PyTorch checkpoint ({size} bytes that are neither a zip archive written by '
            'torch.save nor a pickle)')


def _refusal_reason(err: BaseException) -> str:
    """The unpickler's own reason from torch's long weights-only message, without its advice to
    allow-list the global."""
    text = str(err)
    marker = 'WeightsUnpickler error:'
    if marker in text:
        text = text.split(marker, 1)[1]
    # torch's framing paragraphs (its advice to retry with weights_only=False, a link) are not the reason
    boilerplate = ('Weights only load failed', 'Check the documentation of torch.load')
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(boilerplate)]
    text = lines[0] if lines else type(err).__name__
    return text.split(' Please use `torch.serialization')[0].rstrip('. ')


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with the mmengine allow-list, and errors that say what
    is wrong with the file.

    Raises:
        CheckpointLoadError: the file is missing, empty, truncated, not a checkpoint, or needs globals
            outside the allow-list (the message then names the global).
    """
    problem = describe_file_problem(path)
    if problem is not None:
        raise CheckpointLoadError(f'Checkpoint {path} {problem}.')
    try:
        with mmengine_checkpoint_globals():
            return _drop_planted_statistics(torch.load(path, map_location=map_location, weights_only=True))
    except pickle.UnpicklingError as err:
        raise CheckpointLoadError(
            f'Checkpoint {path} was refused by the weights-only loader: {_refusal_reason(err)}. '
            'Loading it would need a global outside the allow-list of tensors, containers and '
            'mmengine data types, which could run code stored in the file.') from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointLoadError(f'Checkpoint {path} cannot be read: {err}') from None


def is_refused_by_allow_list(err: BaseException) -> bool:
    """Whether ``err`` (from :func:`load_checkpoint_file`) is a weights-only refusal, i.e. the file is
    a valid pickle that needs more globals, as opposed to a broken or foreign file."""
    return isinstance(err, CheckpointLoadError) and 'refused by the weights-only loader' in str(err)


def _load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader of local checkpoint files, with :func:`load_checkpoint_file`'s checks."""
    return load_checkpoint_file(osp.expanduser(filename), map_location=map_location)


def load_url_weights_only(url: str, model_dir: Optional[str] = None, map_location: Any = None,
                          progress: bool = True, **kwargs) -> Any:
    """mmengine's ``load_url`` (the download behind ``http(s)://``, ``open-mmlab://``, ``torchvision://``
    and ``mmcls://`` checkpoints) with ``weights_only=True``: ``torch.hub.load_state_dict_from_url``,
    which mmengine calls, unpickles with ``weights_only=False`` by default, i.e. runs code in the file."""
    try:
        with mmengine_checkpoint_globals():
            return _drop_planted_statistics(torch.hub.load_state_dict_from_url(
                url, model_dir=model_dir, map_location=map_location, progress=progress, weights_only=True,
                **kwargs))
    except pickle.UnpicklingError as err:
        raise CheckpointLoadError(
            f'Checkpoint {url} was refused by the weights-only loader: {_refusal_reason(err)}. '
            'Loading it would need a global outside the allow-list of tensors, containers and '
            'mmengine data types, which could run code stored in the file.') from None


@contextmanager
def safe_checkpoint_loading() -> Iterator[None]:
    """:func:`mmengine_checkpoint_globals`, mmengine's ``CheckpointLoader`` reading local files with
    :func:`load_checkpoint_file` and downloads with :func:`load_url_weights_only`, inside the ``with``
    block only."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    schemes = mmengine_checkpoint.CheckpointLoader._schemes
    previous = schemes.get('')
    previous_load_url = mmengine_checkpoint.load_url
    schemes[''] = _load_from_local
    mmengine_checkpoint.load_url = load_url_weights_only
    try:
        with mmengine_checkpoint_globals():
            yield
    finally:
        mmengine_checkpoint.load_url = previous_load_url
        if previous is None:
            schemes.pop('', None)
        else:
            schemes[''] = previous
