"""Shared machinery of the checkpoint converters (``tools/model_converters/*2mmattn.py``).

Every converter follows the same steps:

1. :func:`load_source` reads the file (``torch.load`` with ``weights_only=True``; a pickle that
   needs more is refused unless ``--trust-source`` is given; a broken or foreign file is refused) and :func:`extract_state_dict` finds the
   weights in it (``state_dict`` / ``model`` / ``state_dict_ema`` entries or a bare state dict).
2. The converter renames keys and infers the target mmattn backbone (type, depth and the
   hyper-parameters that change shapes: ECA kernel sizes, SE reduction, SA/SGE groups ...) from the
   keys and shapes alone.
3. :func:`verify_and_export` builds that backbone, checks that the converted keys are exactly the
   backbone's keys with exactly its shapes, loads them with ``strict=True`` and checks that every
   tensor of the loaded backbone equals the source tensor. Anything else raises
   :class:`ConversionError` with the missing / unexpected / mismatched keys and a summary of what
   the source file holds.
4. :func:`save_checkpoint` writes ``{'state_dict': ..., 'meta': ...}`` (optionally with a key prefix
   such as ``backbone.``).
"""
import argparse
import os.path as osp
import re
import sys
from collections import Counter, OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch

#: ResNet block counts per stage -> depth (torchvision/mmdet ResNet layouts)
DEPTH_BY_BLOCKS = {
    ('basic', (2, 2, 2, 2)): 18,
    ('basic', (3, 4, 6, 3)): 34,
    ('bottleneck', (3, 4, 6, 3)): 50,
    ('bottleneck', (3, 4, 23, 3)): 101,
    ('bottleneck', (3, 8, 36, 3)): 152,
}

_MAX_LISTED = 12  # keys listed per category in an error message


class ConversionError(RuntimeError):
    """The source checkpoint cannot be converted into the requested target."""


# ----------------------------------------------------------------------------- loading
def load_source(path: str, trust_source: bool = False):
    """Load a checkpoint on CPU without running code from it.

    :func:`mmattn.utils.load_checkpoint_file`: ``torch.load(weights_only=True)`` with mmattn's
    allow-list of mmengine data types. A file that is missing, empty, truncated or not a checkpoint
    is reported as such. Only a valid pickle that needs globals outside the allow-list is loaded
    with ``trust_source=True`` (``weights_only=False``, which can execute code from the file).
    """
    from mmattn.utils.checkpoint import (CheckpointLoadError, is_refused_by_allow_list,
                                         load_checkpoint_file)
    if not osp.isfile(path):
        raise ConversionError(f'source checkpoint {path!r} does not exist')
    try:
        return load_checkpoint_file(path)
    except CheckpointLoadError as err:
        if not is_refused_by_allow_list(err):
            raise ConversionError(str(err)) from None
        if not trust_source:
            raise ConversionError(
                f'{err}\nIf you trust this file, re-run with --trust-source (loads it with '
                'weights_only=False, which can execute code stored in the pickle).') from None
    return torch.load(path, map_location='cpu', weights_only=False)


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def extract_state_dict(obj, use_ema: bool = False) -> Tuple['OrderedDict[str, torch.Tensor]', str]:
    """Return ``(state_dict, where)`` from a loaded checkpoint object.

    Looks at ``state_dict_ema`` (only with ``use_ema``), ``state_dict``, ``model``, ``module`` and
    finally the object itself. ``where`` names the entry that was used.
    """
    if not isinstance(obj, dict):
        raise ConversionError(f'the checkpoint holds a {type(obj).__name__}, not a dict of weights')
    order = (['state_dict_ema'] if use_ema else []) + ['state_dict', 'model', 'module']
    if use_ema and 'state_dict_ema' not in obj:
        raise ConversionError(f'--ema was given but the checkpoint has no state_dict_ema entry '
                              f'(top-level keys: {sorted(obj)[:20]})')
    for key in order:
        if key in obj and _is_state_dict(obj[key]):
            return OrderedDict(obj[key]), f'[{key!r}]'
    if _is_state_dict(obj):
        return OrderedDict(obj), 'the file itself (a bare state dict)'
    tensors = sum(isinstance(v, torch.Tensor) for v in obj.values())
    raise ConversionError('no state dict found: expected a dict of tensors or an entry state_dict / '
                          f'model / module holding one; top-level keys: {sorted(map(str, obj))[:20]} '
                          f'({tensors} of {len(obj)} top-level values are tensors)')


def strip_prefix(sd: Dict[str, torch.Tensor], prefix: str) -> Tuple[Dict[str, torch.Tensor], bool]:
    """Remove ``prefix`` from every key if ALL keys have it; returns ``(new_sd, stripped)``."""
    if sd and all(k.startswith(prefix) for k in sd):
        return OrderedDict((k[len(prefix):], v) for k, v in sd.items()), True
    return sd, False


def split_by_prefix(sd: Dict[str, torch.Tensor], prefixes: Sequence[str]):
    """Split ``sd`` into (kept, dropped) where dropped keys start with one of ``prefixes``."""
    kept, dropped = OrderedDict(), OrderedDict()
    for k, v in sd.items():
        (dropped if any(k.startswith(p) for p in prefixes) else kept)[k] = v
    return kept, dropped


# ----------------------------------------------------------------------------- describing a source
def se_conv_as_linear(key: str, value: torch.Tensor) -> torch.Tensor:
    """An SE 1x1 conv weight (out, in, 1, 1) as the Linear weight (out, in) of ``SEModule.fc``; a bias as is."""
    if not key.endswith('weight'):
        return value
    if value.dim() != 4 or value.shape[2:] != (1, 1):
        raise ConversionError(f'{key} has shape {tuple(value.shape)}; a 1x1 conv (out, in, 1, 1) was expected')
    return value.reshape(value.shape[0], value.shape[1])


def describe_source(sd: Dict[str, torch.Tensor], limit: int = 8) -> str:
    """A short human-readable summary of a state dict's layout (for error messages)."""
    if not sd:
        return 'an empty state dict'
    tops = Counter(k.split('.', 1)[0] for k in sd)
    lines = [f'{len(sd)} tensors; top-level names: ' +
             ', '.join(f'{name} ({n})' for name, n in tops.most_common(limit)) +
             (' ...' if len(tops) > limit else '')]
    block = [k for k in sd if re.match(r'^layer1\.0\.', k)]
    if block:
        lines.append('keys of layer1.0: ' + ', '.join(
            f'{k[len("layer1.0."):]} {tuple(sd[k].shape)}' for k in block[:16]) +
            (' ...' if len(block) > 16 else ''))
    else:
        lines.append('first keys: ' + ', '.join(f'{k} {tuple(sd[k].shape)}' for k in list(sd)[:limit]))
    return '\n  '.join(lines)


def stage_block_counts(keys: Iterable[str], prefix: str = '') -> Tuple[int, ...]:
    """Number of blocks in ``layer1..layer4`` (from ``layerS.B.*`` keys)."""
    pattern = re.compile(r'^' + re.escape(prefix) + r'layer(\d+)\.(\d+)\.')
    blocks: Dict[int, set] = {}
    for k in keys:
        m = pattern.match(k)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not blocks:
        return ()
    stages = sorted(blocks)
    if stages != list(range(1, len(stages) + 1)):
        raise ConversionError(f'stages {stages} found; expected layer1..layerN without gaps')
    counts = []
    for s in stages:
        if sorted(blocks[s]) != list(range(len(blocks[s]))):
            raise ConversionError(f'layer{s} has blocks {sorted(blocks[s])}; expected 0..N-1 without gaps')
        counts.append(len(blocks[s]))
    return tuple(counts)


def infer_depth(sd: Dict[str, torch.Tensor], depth: Optional[int] = None) -> Tuple[int, str]:
    """Depth and block kind (``'basic'``/``'bottleneck'``) of a torchvision-layout ResNet state dict.

    ``depth`` (from the command line) must agree with the keys if given.
    """
    counts = stage_block_counts(sd)
    if not counts:
        raise ConversionError('no layerS.B.* keys: this is not a ResNet-layout state dict\n  ' +
                              describe_source(sd))
    kind = 'bottleneck' if any(re.match(r'^layer\d+\.\d+\.conv3\.', k) for k in sd) else 'basic'
    found = DEPTH_BY_BLOCKS.get((kind, counts))
    if found is None:
        known = ', '.join(f'{d}: {c}' for (_, c), d in DEPTH_BY_BLOCKS.items())
        raise ConversionError(f'{kind} blocks per stage {counts} match no standard ResNet depth ({known})')
    if depth is not None and depth != found:
        raise ConversionError(f'--depth {depth} was given but the checkpoint holds a ResNet-{found} '
                              f'({kind} blocks per stage {counts})')
    return found, kind


def per_stage_values(sd: Dict[str, torch.Tensor], pattern: str, fn, what: str) -> Tuple:
    """``fn(tensor)`` for every key matching ``layer(S).(B).<pattern>``; one value per stage.

    Raises if blocks of one stage disagree (mmattn backbones take one value per stage).
    """
    regex = re.compile(r'^layer(\d+)\.(\d+)\.' + pattern + r'$')
    values: Dict[int, Dict[int, object]] = {}
    for k, v in sd.items():
        m = regex.match(k)
        if m:
            values.setdefault(int(m.group(1)), {})[int(m.group(2))] = fn(v)
    result = []
    for s in sorted(values):
        distinct = set(values[s].values())
        if len(distinct) != 1:
            detail = ', '.join(f'layer{s}.{b}: {val}' for b, val in sorted(values[s].items()))
            raise ConversionError(f'{what} differs between the blocks of layer{s} ({detail}); mmattn '
                                  'backbones take one value per stage')
        result.append(distinct.pop())
    return tuple(result)


def uniform(values: Sequence, what: str):
    """The single value of ``values`` if all stages agree, else None."""
    return values[0] if values and len(set(values)) == 1 else None


# ----------------------------------------------------------------------------- building / verifying
def build_backbone(cfg: dict) -> torch.nn.Module:
    """Build an mmattn / mmdet backbone from ``cfg`` (``init_cfg`` off), in eval mode."""
    import mmattn.models  # noqa: F401  (registers the backbones)
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    cfg = dict(cfg, init_cfg=None)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg)
    model.eval()  # (mmdet's ResNet.train() returns None: no chaining)
    return model


def _fmt_keys(keys: Sequence[str], shapes: Optional[Dict] = None) -> str:
    shown = [f'{k} {tuple(shapes[k].shape)}' if shapes is not None else k for k in list(keys)[:_MAX_LISTED]]
    more = f' ... (+{len(keys) - _MAX_LISTED} more)' if len(keys) > _MAX_LISTED else ''
    return ', '.join(shown) + more


def compare_keys(target: Dict[str, torch.Tensor], converted: Dict[str, torch.Tensor]):
    """``(missing, unexpected, shape_mismatch)`` of ``converted`` against ``target``."""
    missing = [k for k in target if k not in converted]
    unexpected = [k for k in converted if k not in target]
    mismatch = [k for k in target if k in converted and tuple(target[k].shape) != tuple(converted[k].shape)]
    return missing, unexpected, mismatch


def fill_num_batches_tracked(target: Dict[str, torch.Tensor], converted: Dict[str, torch.Tensor]) -> List[str]:
    """Old (pre torch 0.4.1) checkpoints have no ``num_batches_tracked``: add zeros, only if the
    source has none at all. Returns the added keys."""
    if any(k.endswith('num_batches_tracked') for k in converted):
        return []
    added = []
    for k, v in target.items():
        if k.endswith('num_batches_tracked') and k not in converted:
            converted[k] = torch.zeros_like(v)
            added.append(k)
    return added


def verify_and_export(cfg: dict, converted: Dict[str, torch.Tensor], source: Dict[str, torch.Tensor],
                      source_name: str, hint: str = '') -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Build the backbone of ``cfg``, require ``converted`` to match it exactly, load it strictly.

    Returns ``(state_dict in the backbone's key order, report)``; ``report`` has the config and the
    list of keys added (``num_batches_tracked`` only).
    """
    model = build_backbone(cfg)
    target = model.state_dict()
    converted = OrderedDict(converted)
    added = fill_num_batches_tracked(target, converted)
    missing, unexpected, mismatch = compare_keys(target, converted)
    if missing or unexpected or mismatch:
        lines = [f'{source_name} does not match the backbone {cfg_repr(cfg)}:']
        if missing:
            lines.append(f'  {len(missing)} backbone keys are not filled by the source: '
                         + _fmt_keys(missing, target))
        if unexpected:
            lines.append(f'  {len(unexpected)} converted keys have no place in the backbone: '
                         + _fmt_keys(unexpected, converted))
        if mismatch:
            lines.append(f'  {len(mismatch)} shape mismatches (backbone vs converted): ' + ', '.join(
                f'{k} {tuple(target[k].shape)} vs {tuple(converted[k].shape)}' for k in mismatch[:_MAX_LISTED]))
        lines.append('  the source holds ' + describe_source(source))
        if hint:
            lines.append('  ' + hint)
        raise ConversionError('\n'.join(lines))
    ordered = OrderedDict((k, converted[k]) for k in target)
    result = model.load_state_dict(ordered, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    loaded = model.state_dict()
    differ = [k for k in target if not torch.equal(loaded[k], ordered[k].to(loaded[k].dtype))]
    if differ:  # pragma: no cover - would mean load_state_dict silently changed values
        raise ConversionError(f'after loading, {len(differ)} backbone tensors differ from the source: '
                              + _fmt_keys(differ))
    return ordered, dict(config=cfg, added_keys=added, num_tensors=len(ordered))


def cfg_repr(cfg: dict) -> str:
    """``dict(type='ECAResNet', depth=50, kernel_size=(3, 5, 5, 7))`` for messages and configs."""
    return 'dict(' + ', '.join(f'{k}={v!r}' for k, v in cfg.items()) + ')'


def save_checkpoint(sd: Dict[str, torch.Tensor], path: str, prefix: str = '', meta: Optional[dict] = None):
    """Write ``{'state_dict': {prefix + key: tensor}, 'meta': meta}`` (plain tensors, loadable with
    ``weights_only=True``)."""
    out = OrderedDict((prefix + k, v.detach().clone().contiguous()) for k, v in sd.items())
    dirname = osp.dirname(osp.abspath(path))
    if not osp.isdir(dirname):
        raise ConversionError(f'output folder {dirname!r} does not exist')
    torch.save({'state_dict': out, 'meta': meta or {}}, path)


def report(cfg: dict, info: dict, dst: str, dropped: Sequence[str], prefix: str, extra: str = '') -> str:
    """The success message printed by the converters."""
    lines = [f'converted {info["num_tensors"]} tensors -> {dst}',
             f'backbone: {cfg_repr(cfg)}  (every key filled, shapes equal, loaded with strict=True)']
    if dropped:
        lines.append(f'dropped {len(dropped)} non-backbone keys: ' + _fmt_keys(list(dropped)))
    if info['added_keys']:
        lines.append(f'added {len(info["added_keys"])} num_batches_tracked counters (absent in the source)')
    if prefix:
        lines.append(f'keys prefixed with {prefix!r}')
    lines.append('config: model.backbone = ' + cfg_repr(dict(
        cfg, init_cfg=dict(type='Pretrained', checkpoint=dst, **({'prefix': prefix} if prefix else {})))))
    if extra:
        lines.append(extra)
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- command line
def converter_parser(description: str, src_help: str) -> argparse.ArgumentParser:
    """The arguments every converter takes: src, dst, --depth, --prefix, --ema, --trust-source."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help=src_help)
    parser.add_argument('dst', help='output mmattn backbone checkpoint (.pth)')
    parser.add_argument('--depth', type=int, choices=(18, 34, 50, 101, 152),
                        help='expected depth (default: detected from the block counts)')
    parser.add_argument('--prefix', default='', help="prefix every key, e.g. 'backbone.'")
    parser.add_argument('--ema', action='store_true', help='convert the state_dict_ema entry')
    parser.add_argument('--trust-source', action='store_true',
                        help='allow torch.load(weights_only=False) for pickles that need it')
    return parser


def run_converter(name: str, args, load, convert) -> int:
    """Load ``args.src`` with ``load(path, trust_source)``, ``convert`` it (returns state, cfg, info,
    dropped keys), save to ``args.dst`` and print the report; a ConversionError prints why and
    returns 1."""
    try:
        state, cfg, info, dropped = convert(load(args.src, args.trust_source))
        save_checkpoint(state, args.dst, args.prefix, dict(converter=name, source=args.src, backbone=cfg))
    except ConversionError as err:
        print(f'ERROR: cannot convert {args.src}: {err}', file=sys.stderr)
        return 1
    print(report(cfg, info, args.dst, dropped, args.prefix))
    return 0
