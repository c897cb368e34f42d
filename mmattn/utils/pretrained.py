"""Refuse checkpoints that would load only partly.

mmengine loads ``init_cfg=dict(type='Pretrained')`` and ``load_from`` with ``strict=False``: keys that
are missing or have another shape are skipped with a warning, and the run trains (or evaluates) random
weights. The functions here compare a checkpoint with the model's ``state_dict`` before loading and
raise :class:`PartialCheckpointError` with a short summary (how many tensors match, the first missing
and mismatched keys, and the likely cause) unless partial loading was asked for.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from .checkpoint import (CheckpointLoadError, is_refused_by_allow_list, load_checkpoint_file,
                         safe_checkpoint_loading)

_LISTED = 3  # keys listed per category in a summary
# Tensors whose absence never matters (BN's step counter is not used in training or inference).
_IGNORED_SUFFIXES = ('num_batches_tracked', )
# Children of a ResNet block that are ResNet's own (the rest of a block's children are attention).
_RESNET_BLOCK_PARTS = {'conv1', 'conv2', 'conv3', 'bn1', 'bn2', 'bn3', 'norm1', 'norm2', 'norm3',
                       'downsample'}
_BLOCK_CHILD = re.compile(r'^(?:backbone\.)?layer\d+\.\d+\.([A-Za-z_0-9]+)\.')
_CONVERTERS = ('tools/model_converters/official2mmattn.py (official SE/ECA/SA/EPSA/CBAM/SGE '
               'checkpoints), timm2mmattn.py or mmpretrain2mmattn.py')


class PartialCheckpointError(RuntimeError):
    """A checkpoint leaves model tensors missing or with another shape."""


class Coverage:
    """How a checkpoint's tensors cover a model's ``state_dict``."""

    def __init__(self, model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor]):
        self.total = 0
        self.matched: List[str] = []
        self.missing: List[str] = []
        self.mismatched: List[Tuple[str, tuple, tuple]] = []
        for key, tensor in model_sd.items():
            if key.endswith(_IGNORED_SUFFIXES):
                continue
            self.total += 1
            if key not in ckpt_sd:
                self.missing.append(key)
            elif tuple(ckpt_sd[key].shape) != tuple(tensor.shape):
                self.mismatched.append((key, tuple(ckpt_sd[key].shape), tuple(tensor.shape)))
            else:
                self.matched.append(key)
        self.unexpected = [k for k in ckpt_sd if k not in model_sd and not k.endswith(_IGNORED_SUFFIXES)]

    @property
    def complete(self) -> bool:
        return not self.missing and not self.mismatched

    def summary(self) -> str:
        lines = [f'{len(self.matched)} of {self.total} tensors of the model match']
        if self.missing:
            more = f' (and {len(self.missing) - _LISTED} more)' if len(self.missing) > _LISTED else ''
            lines.append(f'{len(self.missing)} missing: {", ".join(self.missing[:_LISTED])}{more}')
        if self.mismatched:
            listed = ', '.join(f'{k} {tuple(c)} in the checkpoint vs {tuple(m)} in the model'
                               for k, c, m in self.mismatched[:_LISTED])
            more = f' (and {len(self.mismatched) - _LISTED} more)' if len(self.mismatched) > _LISTED else ''
            lines.append(f'{len(self.mismatched)} with another shape: {listed}{more}')
        if self.unexpected:
            lines.append(f'{len(self.unexpected)} checkpoint tensors unused, e.g. '
                         f'{", ".join(self.unexpected[:_LISTED])}')
        return '; '.join(lines)


def extract_state_dict(checkpoint) -> 'OrderedDict[str, torch.Tensor]':
    """The weights of a loaded checkpoint (``state_dict`` / ``model`` entry or the dict itself), with
    the ``module.`` prefix of wrapped models removed as mmengine's loader does."""
    if not isinstance(checkpoint, Mapping):
        raise PartialCheckpointError(f'the checkpoint holds a {type(checkpoint).__name__}, not a dict of '
                                     'weights')
    sd = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), Mapping):
            sd = checkpoint[key]
            break
    tensors = OrderedDict((k, v) for k, v in sd.items() if isinstance(k, str) and isinstance(v, torch.Tensor))
    return OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in tensors.items())


def select_prefix(sd: Mapping[str, torch.Tensor], prefix: Optional[str]) -> 'OrderedDict[str, torch.Tensor]':
    """The keys under ``prefix`` with the prefix removed (mmengine's ``Pretrained(prefix=...)``)."""
    if not prefix:
        return OrderedDict(sd)
    if not prefix.endswith('.'):
        prefix += '.'
    return OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))


def _block_children(keys) -> List[str]:
    names = []
    for key in keys:
        m = _BLOCK_CHILD.match(key)
        if m and m.group(1) not in _RESNET_BLOCK_PARTS and m.group(1) not in names:
            names.append(m.group(1))
    return names


def likely_cause(cov: Coverage, ckpt_sd: Mapping[str, torch.Tensor], prefix: Optional[str] = None,
                 backbone: bool = True) -> str:
    """A one-sentence guess at why ``cov`` is incomplete."""
    if not ckpt_sd:
        where = f' under prefix {prefix!r}' if prefix else ''
        return f'the checkpoint holds no tensors{where} (an empty or foreign state_dict)'
    if backbone and not prefix and any(k.startswith('backbone.') for k in ckpt_sd):
        return ("it is a whole detector's checkpoint: add prefix='backbone.' to init_cfg, or use it as "
                'load_from')
    if backbone and not cov.matched and not any(k.startswith('layer1.') for k in ckpt_sd):
        return (f'its keys do not follow the mmdet ResNet layout (e.g. {next(iter(ckpt_sd))}): it needs '
                f'a converter, {_CONVERTERS}')
    missing_att = _block_children(cov.missing)
    unused_att = _block_children(cov.unexpected)
    if missing_att and set(missing_att) != set(unused_att):
        theirs = ', '.join(unused_att) if unused_att else 'no attention layers'
        return (f'another architecture: the blocks of this backbone hold {", ".join(missing_att)}, those '
                f'of the checkpoint {theirs}; use a checkpoint of this architecture (or convert one with '
                f'{_CONVERTERS})')
    if cov.mismatched:
        key, theirs, ours = cov.mismatched[0]
        what = 'backbone' if backbone else 'model'
        return (f'a {what} of another width or depth (first mismatch: {key} is {theirs} in the checkpoint '
                f'and {ours} here); check base_channels, depth, groups/reduction'
                f'{"" if backbone else " and num_classes"} against the config the checkpoint was trained '
                'with')
    what = 'backbone' if backbone else 'model'
    return f'the checkpoint was saved from another {what} (another config or architecture)'


def check_coverage(model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor], *, source: str,
                   opt_in: str, prefix: Optional[str] = None, backbone: bool = True) -> Coverage:
    """Raise :class:`PartialCheckpointError` unless ``ckpt_sd`` covers ``model_sd`` with equal shapes.

    Args:
        source (str): the checkpoint and where it was given, for the message.
        opt_in (str): how to ask for partial loading anyway, for the message.
    """
    cov = Coverage(model_sd, ckpt_sd)
    if not cov.complete:
        raise PartialCheckpointError(
            f'{source} does not cover the model: {cov.summary()}. Likely cause: '
            f'{likely_cause(cov, ckpt_sd, prefix, backbone)}. To load the matching part anyway, {opt_in}.')
    return cov


def load_any_checkpoint(path: str):
    """A local file through :func:`load_checkpoint_file`; URLs and ``open-mmlab://`` names through
    mmengine's loader with weights-only loading (:func:`safe_checkpoint_loading`)."""
    if '://' not in path:
        return load_checkpoint_file(path)
    from mmengine.runner.checkpoint import CheckpointLoader
    with safe_checkpoint_loading():
        return CheckpointLoader.load_checkpoint(path, map_location='cpu')


def check_pretrained(module: torch.nn.Module, init_cfg: dict, owner: str) -> None:
    """Check a ``Pretrained`` init config of a backbone before mmengine loads it partly.

    ``init_cfg['allow_partial']=True`` skips the check (the caller removes the key before mmengine
    sees it).
    """
    path = init_cfg.get('checkpoint')
    if init_cfg.get('allow_partial') or not isinstance(path, str):
        return
    prefix = init_cfg.get('prefix')
    try:
        checkpoint = load_any_checkpoint(path)
    except CheckpointLoadError as err:
        if not is_refused_by_allow_list(err):
            raise
        raise CheckpointLoadError(
            f'{owner}: {err} If you trust the file, convert it once with '
            'tools/model_converters/official2mmattn.py SRC DST --trust-source (or timm2mmattn.py / '
            'mmpretrain2mmattn.py) and set init_cfg.checkpoint to DST.') from None
    ckpt_sd = select_prefix(extract_state_dict(checkpoint), prefix)
    check_coverage(
        module.state_dict(), ckpt_sd, prefix=prefix,
        source=f'{owner}: the Pretrained checkpoint {path} (init_cfg.checkpoint)',
        opt_in="set model.backbone.init_cfg.allow_partial=True (the rest keeps its random init)")


def model_state_for_checkpoint(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The ``state_dict`` a detector checkpoint is compared with: wrappers (DDP's ``module``, the TTA
    model's ``module``) are unwrapped, as mmengine's runner loads into the inner model."""
    inner = model
    while hasattr(inner, 'module') and isinstance(inner.module, torch.nn.Module):
        inner = inner.module
    return inner.state_dict()
