"""Read what the attention layers of a backbone compute for an input, with forward hooks.

Every attention layer of :mod:`mmattn.layers` has ``attention_maps(x) -> dict[str, Tensor]``, the gates
its own ``forward`` applies to ``x``:

* ``'channel'``: (B, C', 1, 1) channel gate values (SE, ECA, SA's channel branch, CBAM's channel gate);
* ``'spatial'``: (B, K, H, W) spatial gate values (CBAM: K = 1, SGE: K = G groups, SA: its spatial
  branch);
* ``'scale'``: (B, S, C/S, 1, 1) PSA's softmax over its S scales.

:func:`collect_attention` runs a backbone once and calls each layer's ``attention_maps`` on the very
tensor the layer receives (a forward pre-hook), so the tool draws the network's own numbers, never a
re-derivation. It also keeps each stage's output (a hook on every ``res_layers`` stage of an mmdet-style
ResNet). Only torch is needed.
"""
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

#: keys an ``attention_maps`` dict may hold, and how they are drawn
SPATIAL_KEYS = ('spatial', )
CHANNEL_KEYS = ('channel', 'scale')


@dataclass
class LayerMaps:
    """The gates of one attention layer for one forward pass.

    Attributes:
        name: the module's name in the backbone, e.g. ``'layer2.0.sa'`` (PSA: ``'layer2.0.conv2'``).
        stage: 1-based stage index (``layerS``).
        block: 0-based block index inside the stage.
        layer_type: class name of the layer, e.g. ``'ShuffleAttention'``.
        maps: what ``attention_maps`` returned (detached, float32, on the CPU; batch kept).
    """
    name: str
    stage: int
    block: int
    layer_type: str
    maps: Dict[str, torch.Tensor]

    @property
    def block_name(self) -> str:
        """``'layer{stage}.{block}'``, the block's name in the state dict."""
        return f'layer{self.stage}.{self.block}'


@dataclass
class AttentionRecord:
    """Everything one forward pass showed: per-layer gates and per-stage outputs."""
    layers: List[LayerMaps] = field(default_factory=list)
    #: 1-based stage index -> the stage's output (B, C, H, W), float32 on the CPU
    activations: Dict[int, torch.Tensor] = field(default_factory=dict)

    def stages(self) -> List[int]:
        """The stages that have an activation or an attention layer, in order."""
        return sorted(set(self.activations) | {layer.stage for layer in self.layers})

    def layers_of(self, stage: int) -> List[LayerMaps]:
        return [layer for layer in self.layers if layer.stage == stage]


def stage_names(backbone: nn.Module) -> List[str]:
    """The stage modules of an mmdet/mmseg ResNet-style backbone (``res_layers``: 'layer1', ...)."""
    names = getattr(backbone, 'res_layers', None)
    if not names:
        raise TypeError(f'{type(backbone).__name__} has no res_layers: the attention visualizer reads ResNet-style '
                        'backbones (mmdet/mmseg ResNet and its subclasses, e.g. every mmattn backbone)')
    return list(names)


def attention_layers(backbone: nn.Module) -> List[Tuple[str, int, int, nn.Module]]:
    """Every module of ``backbone`` with an ``attention_maps`` method, as (name, stage, block, module).

    A module outside the stages (e.g. an attention layer after the stem) is refused: it has no stage to
    be drawn with.
    """
    stage_of = {name: i + 1 for i, name in enumerate(stage_names(backbone))}
    found = []
    for name, module in backbone.named_modules():
        if not callable(getattr(module, 'attention_maps', None)):
            continue
        parts = name.split('.')
        if len(parts) < 3 or parts[0] not in stage_of or not parts[1].isdigit():
            raise ValueError(f'{type(backbone).__name__}: attention layer {name!r} is not inside a block of a '
                             f'stage ({", ".join(stage_of)}); the visualizer draws gates per stage and block')
        found.append((name, stage_of[parts[0]], int(parts[1]), module))
    return found


_BLOCK_RE = re.compile(r'^layer(\d+)\.(\d+)$')


def parse_blocks(blocks: Sequence[str]) -> List[Tuple[int, int]]:
    """``['layer3.5', 'layer4.0']`` -> ``[(3, 5), (4, 0)]``; anything else fails saying the form."""
    parsed = []
    for text in blocks:
        match = _BLOCK_RE.match(str(text).strip())
        if match is None:
            raise ValueError(f'blocks: {text!r} is not a block name; write layerS.B as in the state dict, '
                             'e.g. layer3.5 (stage 3, block 5; stages from 1, blocks from 0)')
        parsed.append((int(match.group(1)), int(match.group(2))))
    return parsed


def select_layers(found, stages: Optional[Sequence[int]] = None, blocks: Optional[Sequence[str]] = None,
                  num_stages: int = 4, owner: str = 'backbone'):
    """Filter :func:`attention_layers`' list by ``stages`` (1-based) and/or ``blocks`` (``'layerS.B'``).

    A stage or block that does not exist fails naming what exists (a typo must not draw nothing).
    """
    if stages is not None:
        bad = [s for s in stages if not 1 <= int(s) <= num_stages]
        if bad:
            raise ValueError(f'stages: {bad} out of range; {owner} has stages 1..{num_stages}')
        found = [f for f in found if f[1] in set(int(s) for s in stages)]
    if blocks is not None:
        wanted = parse_blocks(blocks)
        present = {(stage, block) for _, stage, block, _ in found}
        missing = [f'layer{s}.{b}' for s, b in wanted if (s, b) not in present]
        if missing:
            have = ', '.join(sorted({f'layer{s}.{b}' for s, b in present}, key=lambda t: parse_blocks([t])[0]))
            raise ValueError(f'blocks: {missing} have no attention layer in {owner} (selected stages); '
                             f'blocks with one: {have}')
        found = [f for f in found if (f[1], f[2]) in set(wanted)]
    return found


def _detached(maps, name: str) -> Dict[str, torch.Tensor]:
    if not isinstance(maps, dict) or not maps:
        raise TypeError(f'{name}.attention_maps(x) must return a non-empty dict of tensors, got {type(maps).__name__}')
    unknown = sorted(set(maps) - set(SPATIAL_KEYS) - set(CHANNEL_KEYS))
    if unknown:
        raise KeyError(f'{name}.attention_maps(x) returned keys {unknown}; the visualizer knows '
                       f'{list(SPATIAL_KEYS + CHANNEL_KEYS)}')
    return {key: value.detach().float().cpu() for key, value in maps.items()}


@torch.no_grad()
def collect_attention(backbone: nn.Module, inputs: torch.Tensor, stages: Optional[Sequence[int]] = None,
                      blocks: Optional[Sequence[str]] = None) -> AttentionRecord:
    """Run ``backbone(inputs)`` once and return the gates of its attention layers and its stage outputs.

    Args:
        backbone: an mmdet/mmseg ResNet-style backbone (has ``res_layers``), in the mode it should be
            read in (call ``.eval()`` first for inference statistics).
        inputs: (B, 3, H, W) normalised images.
        stages: 1-based stages to read (default: all).
        blocks: block names ``'layerS.B'`` to read (default: every block of the chosen stages).

    The fused paths of :mod:`mmattn.fused` compute ``identity + gate(x)`` in one pass without calling
    the layer module, so no hook would see its input; the pass runs with the plain formulas
    (:func:`mmattn.fused.fused` ``(False)``). The gates are the same: each fused form is tested equal to
    its layer's ``forward``, which applies ``attention_maps``.
    """
    from ..fused import fused

    names = stage_names(backbone)
    owner = type(backbone).__name__
    chosen = select_layers(attention_layers(backbone), stages, blocks, len(names), owner)
    if blocks is not None:
        chosen_stages = sorted({stage for _, stage, _, _ in chosen})
    elif stages is not None:
        chosen_stages = sorted(int(s) for s in stages)
    else:
        chosen_stages = list(range(1, len(names) + 1))
    record = AttentionRecord()
    seen: Dict[str, LayerMaps] = {}
    handles = []

    def read_gates(name, stage, block):

        def hook(mod, args):
            if name in seen:
                raise RuntimeError(f'{owner}: attention layer {name!r} ran twice in one forward pass; the '
                                   'visualizer expects each layer once per pass')
            seen[name] = LayerMaps(name, stage, block, type(mod).__name__,
                                   _detached(mod.attention_maps(args[0]), name))

        return hook

    def read_stage(stage):

        def hook(mod, args, output):
            record.activations[stage] = output.detach().float().cpu().clone()

        return hook

    try:
        for name, stage, block, module in chosen:
            handles.append(module.register_forward_pre_hook(read_gates(name, stage, block)))
        for stage in chosen_stages:
            handles.append(getattr(backbone, names[stage - 1]).register_forward_hook(read_stage(stage)))
        with fused(False):
            backbone(inputs)
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name, *_ in chosen if name not in seen]
    if missing:
        raise RuntimeError(f'{owner}: attention layers {missing} did not run in the forward pass (is the stage '
                           'frozen out of the forward, or num_stages smaller than the module list?)')
    record.layers = [seen[name] for name, *_ in chosen]
    return record
