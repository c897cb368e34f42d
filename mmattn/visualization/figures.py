"""Figures of an :class:`~mmattn.visualization.collect.AttentionRecord`.

Maps are overlaid on the image with mmengine's ``Visualizer.draw_featmap`` (min-max normalised heat
map, JET colours) and labelled with ``Visualizer.draw_texts``; channel gates and the comparison grid are
matplotlib plots on a fixed 0-1 colour scale (every gate is a sigmoid or a softmax), so figures of two
backbones compare value for value.
"""
import re
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .collect import CHANNEL_KEYS, SPATIAL_KEYS, AttentionRecord, LayerMaps

_VIS_NAME = 'mmattn.visualization'
GATE_CMAP = 'viridis'


def _visualizer():
    from mmengine.visualization import Visualizer
    return Visualizer.get_instance(_VIS_NAME)


def spatial_map(layer: LayerMaps, index: int = 0) -> Optional[torch.Tensor]:
    """The (K, h, w) spatial gate of sample ``index`` (None if the layer has none)."""
    maps = [layer.maps[key][index] for key in SPATIAL_KEYS if key in layer.maps]
    return torch.cat(maps) if maps else None


def channel_values(layer: LayerMaps, index: int = 0) -> Optional[np.ndarray]:
    """The channel-type gates of sample ``index`` as one vector (PSA: scales x channels, scale-major)."""
    values = [layer.maps[key][index].reshape(-1) for key in CHANNEL_KEYS if key in layer.maps]
    return torch.cat(values).numpy() if values else None


def overlay(featmap: torch.Tensor, image_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``featmap`` (K, h, w), averaged over K and resized to the image, as a heat map on ``image_rgb``."""
    from mmengine.visualization import Visualizer
    # averaging first is the same as after the (linear) resize, on K times fewer pixels
    featmap = featmap.float().mean(0, keepdim=True)
    if featmap.shape[-2:] != image_rgb.shape[:2]:
        featmap = F.interpolate(featmap[None], image_rgb.shape[:2], mode='bilinear', align_corners=False)[0]
    if _is_constant(featmap):
        # min-max normalisation would blow rounding noise of a constant gate up to the full colour range
        featmap = torch.zeros_like(featmap)
    return Visualizer.draw_featmap(featmap, image_rgb, channel_reduction='squeeze_mean', alpha=alpha)


def labelled_row(tiles: Sequence[np.ndarray], labels: Sequence[str], gap: int = 2) -> np.ndarray:
    """Tiles of one size side by side (``gap`` white pixels apart), each labelled in its top-left corner."""
    h, w = tiles[0].shape[:2]
    spacer = np.full((h, gap, 3), 255, np.uint8)
    parts = []
    for i, tile in enumerate(tiles):
        parts.extend([spacer, tile] if i else [tile])
    row = np.concatenate(parts, axis=1)
    vis = _visualizer()
    vis.set_image(row)
    positions = np.array([[i * (w + gap) + 2, 2] for i in range(len(tiles))])
    vis.draw_texts(list(labels), positions, font_sizes=max(6, min(10, w // 20)), colors='white',
                   bboxes=dict(facecolor='black', alpha=0.6, pad=1, edgecolor='none'))
    return vis.get_image()


def _is_constant(t: torch.Tensor) -> bool:
    """Equal up to float32 rounding (e.g. SA's gates at their initialisation, sigmoid(1) everywhere)."""
    return float(t.max() - t.min()) <= 1e-5 * float(t.abs().max())


def _range(t) -> str:
    return f'const {float(t.mean()):.2f}' if _is_constant(t) else f'{float(t.min()):.2f}-{float(t.max()):.2f}'


def stage_activation(record: AttentionRecord, stage: int, image_rgb: np.ndarray) -> np.ndarray:
    """Stage ``stage``'s output (mean over channels) on the image, labelled with its shape."""
    act = record.activations[stage][0]
    label = f'layer{stage} C={act.shape[0]} {act.shape[1]}x{act.shape[2]}'
    return labelled_row([overlay(act, image_rgb)], [label])


def stage_spatial(layers: Sequence[LayerMaps], image_rgb: np.ndarray) -> Optional[np.ndarray]:
    """One overlay per layer with a spatial gate (mean over its K maps), labelled with the gate range."""
    tiles, labels = [], []
    for layer in layers:
        smap = spatial_map(layer)
        if smap is None:
            continue
        tiles.append(overlay(smap, image_rgb))
        k = f' K={smap.shape[0]}' if smap.shape[0] > 1 else ''
        labels.append(f'{layer.block_name}{k} {_range(smap)}')
    return labelled_row(tiles, labels) if tiles else None


def save_stage_channels(layers: Sequence[LayerMaps], path: str, title: str, dpi: int = 100) -> Optional[dict]:
    """Heat strip (one row per block, channels in order) and histogram of the channel-type gates.

    Returns the drawn rows ``{layer name: values}``, or None when no layer has a channel gate.
    """
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    rows = {layer.name: channel_values(layer) for layer in layers}
    rows = {name: v for name, v in rows.items() if v is not None}
    if not rows:
        return None
    width = max(len(v) for v in rows.values())
    strip = np.full((len(rows), width), np.nan, np.float32)
    for i, v in enumerate(rows.values()):
        strip[i, :len(v)] = v
    fig, (ax_strip, ax_hist) = plt.subplots(1, 2, figsize=(8, 0.35 * len(rows) + 1.4), dpi=dpi,
                                            gridspec_kw=dict(width_ratios=(3, 1)))
    image = ax_strip.imshow(strip, aspect='auto', cmap=GATE_CMAP, vmin=0, vmax=1, interpolation='nearest')
    ax_strip.set_yticks(range(len(rows)), [name.rsplit('.', 1)[0] for name in rows], fontsize=7)
    first = next(layer for layer in layers if layer.name in rows)
    if 'scale' in first.maps:
        s, c = first.maps['scale'].shape[1:3]
        for i in range(1, s):
            ax_strip.axvline(i * c - 0.5, color='white', lw=0.8)
        ax_strip.set_xlabel(f'softmax over {s} scales x {c} channels (scale-major)', fontsize=8)
    else:
        ax_strip.set_xlabel(f'channel (C\'={width})', fontsize=8)
    ax_strip.tick_params(axis='x', labelsize=7)
    fig.colorbar(image, ax=ax_strip, fraction=0.03, pad=0.01)
    bins = np.linspace(0, 1, 41)
    for name, v in rows.items():
        ax_hist.hist(v, bins=bins, histtype='step', label=name.rsplit('.', 1)[0])
    ax_hist.set_xlim(0, 1)
    ax_hist.set_xlabel('gate value', fontsize=8)
    ax_hist.tick_params(labelsize=7)
    if len(rows) <= 8:
        ax_hist.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return rows


def compare_figure(rows: Sequence[Tuple[str, AttentionRecord]], image_rgb: np.ndarray, path: str,
                   title: str, stages: Optional[Sequence[int]] = None, cell: float = 1.25,
                   dpi: int = 80) -> Dict[str, dict]:
    """One row per backbone; per stage three columns: output, spatial gate, channel gates (sorted).

    The spatial column shows the last selected block of the stage that has a spatial gate; the channel
    column has one line per block with its gates sorted from high to low (so the shapes of the
    distributions compare across modules of different widths). Returns what each cell drew:
    ``{label: {'spatial': {stage: (layer name, map)}, 'channel': {stage: {layer name: sorted values}}}}``.
    """
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    if stages is None:
        stages = sorted(set().union(*(record.stages() for _, record in rows)))
    ncols = 1 + 3 * len(stages)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(cell * ncols + 0.8, cell * len(rows) + 0.9), dpi=dpi,
                             squeeze=False)
    drawn = {}
    strip_image = None
    for r, (label, record) in enumerate(rows):
        drawn[label] = dict(spatial={}, channel={})
        axes[r, 0].imshow(image_rgb)
        axes[r, 0].set_ylabel(_wrap(label), fontsize=7)
        for j, stage in enumerate(stages):
            ax_act, ax_sp, ax_ch = axes[r, 1 + 3 * j:4 + 3 * j]
            if stage not in record.stages():
                ax_act.text(0.5, 0.5, f'no layer{stage}', ha='center', va='center', fontsize=7, color='0.5')
                continue
            if stage in record.activations:
                act = record.activations[stage][0]
                ax_act.imshow(overlay(act, image_rgb))
                ax_act.set_xlabel(f'C={act.shape[0]}', fontsize=6, labelpad=1)
            layers = record.layers_of(stage)
            spatial = [layer for layer in layers if spatial_map(layer) is not None]
            if spatial:
                smap = spatial_map(spatial[-1])
                ax_sp.imshow(overlay(smap, image_rgb))
                ax_sp.set_xlabel(f'{spatial[-1].block_name} {_range(smap)}', fontsize=6, labelpad=1)
                drawn[label]['spatial'][stage] = (spatial[-1].name, smap)
            else:
                ax_sp.text(0.5, 0.5, 'no spatial\ngate', ha='center', va='center', fontsize=7, color='0.5')
            values = {layer.name: channel_values(layer) for layer in layers}
            values = {name: np.sort(v)[::-1] for name, v in values.items() if v is not None}
            if values:
                width = max(len(v) for v in values.values())
                strip = np.full((len(values), width), np.nan, np.float32)
                for i, v in enumerate(values.values()):
                    strip[i, :len(v)] = v
                strip_image = ax_ch.imshow(strip, aspect='auto', cmap=GATE_CMAP, vmin=0, vmax=1,
                                           interpolation='nearest')
                ax_ch.set_xlabel(f'{len(values)} blocks x {width}', fontsize=6, labelpad=1)
                drawn[label]['channel'][stage] = values
            else:
                ax_ch.text(0.5, 0.5, 'no channel\ngate', ha='center', va='center', fontsize=7, color='0.5')
    for j, stage in enumerate(stages):
        for k, name in enumerate(('output', 'spatial gate', 'channel gates\n(sorted)')):
            axes[0, 1 + 3 * j + k].set_title(f'layer{stage} {name}', fontsize=7)
    axes[0, 0].set_title('input', fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_linewidth(0.3)
    fig.suptitle(title, fontsize=8)
    # half an inch on the right for the colour bar and its labels, whatever the figure's width
    inch = 1 / fig.get_figwidth()
    fig.tight_layout(rect=(0, 0, 1 - 0.5 * inch, 1))
    if strip_image is not None:
        cax = fig.add_axes((1 - 0.45 * inch, 0.15, 0.1 * inch, 0.7))
        fig.colorbar(strip_image, cax=cax)
        cax.tick_params(labelsize=6)
    _save_palette(fig, path)
    plt.close(fig)
    return drawn


def _wrap(label: str, width: int = 16) -> str:
    """A row label in lines of about ``width`` characters, broken after '_' or '-' (config names)."""
    lines = []
    for part in label.split('\n'):
        line = ''
        for piece in re.findall(r'[^_-]*[_-]?', part):
            if line and len(line) + len(piece) > width:
                lines.append(line)
                line = ''
            line += piece
        lines.append(line)
    return '\n'.join(lines)


def _save_palette(fig, path: str) -> None:
    """Save ``fig`` as a 256-colour PNG: the noisy heat maps make a true-colour grid of six backbones
    over half a megabyte, the palette about a quarter of that (the exact values are in gates.npz)."""
    from PIL import Image
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    Image.fromarray(rgb).quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
