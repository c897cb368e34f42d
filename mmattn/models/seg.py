"""MMSegmentation integration: the mmattn backbones (and training hooks) in mmseg's registries.

Imported by :mod:`mmattn.models` when mmseg is installed (``pip install mmattn[seg]``), so an
mmseg-scoped config finds the backbones by their plain names (``type='SAResNet'``) as well as by the
scope prefix (``type='mmdet.SAResNet'``), with ``custom_imports = dict(imports=['mmattn.models'])``.

The classes are the mmdet ones (subclasses of mmdet's ResNet), registered a second time: in mmseg the
same module names, checkpoints, ``norm_eval``, ``frozen_stages`` and, for dilated networks,
``strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True`` apply as in mmseg's own
``ResNet`` (the torchvision-style stem of mmseg's ``*_r50b-d8_*`` configs). The hooks of
:mod:`mmattn.engine`, which ``tools/train.py`` adds to every run, are registered for mmseg runs too.
"""
from typing import List

from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import MODELS as MMDET_MODELS
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import MODELS as MMSEG_MODELS

from .. import engine  # noqa: F401  (registers mmattn's hooks in mmdet's HOOKS, copied below)
from ..utils.config_check import mmattn_backbones


def _copy(names: List[str], src, dst) -> None:
    for name in names:
        cls = src.module_dict[name]
        registered = dst.module_dict.get(name)
        if registered is None:
            dst.register_module(name=name, module=cls)
        elif registered is not cls:
            raise RuntimeError(f'mmattn: {name!r} is already registered in mmseg {dst.name} as '
                               f'{registered!r}; refusing to shadow it')


def register_seg_modules() -> List[str]:
    """Register mmattn's backbones and hooks in mmseg's ``MODELS`` and ``HOOKS`` (idempotent); return
    the backbone names.

    Raises:
        RuntimeError: if mmseg already has another class under one of the names (it would be
            shadowed for mmseg configs otherwise).
    """
    backbones = mmattn_backbones()
    _copy(backbones, MMDET_MODELS, MMSEG_MODELS)
    hooks = sorted(name for name, cls in MMDET_HOOKS.module_dict.items()
                   if getattr(cls, '__module__', '').startswith('mmattn.'))
    _copy(hooks, MMDET_HOOKS, MMSEG_HOOKS)
    return backbones


register_seg_modules()
