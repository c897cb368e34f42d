"""Write the attention figures of one or several backbones for some images (the tool's whole job).

For every image and model, ``OUT_DIR/<model label>/<image stem>/`` receives:

* ``stage{S}_activation.png``: stage S's output (mean over channels) on the image, at the image's size;
* ``stage{S}_spatial.png``: each block's spatial gate (mean over its K maps) on the image, the blocks
  side by side (stages without a spatial gate have none);
* ``stage{S}_channel.png``: the channel gates (SE, ECA, SA/CBAM channel branch, PSA's scale softmax) as
  a heat strip, one row per block, and their histogram;
* ``overview.png``: all stages in one row (the comparison layout);
* ``gates.npz``: every map the layers returned (``'<layer name>/<key>'``, this image's slice) and
  every stage output's channel mean (``'layer{S}/activation_mean'``);
* ``summary.json``: model, weights, sizes, files, and per layer its type, keys, shapes and ranges.

With several models, ``OUT_DIR/compare_<image stem>.png`` has one row per model.
"""
import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .collect import AttentionRecord, collect_attention
from .figures import compare_figure, save_stage_channels, stage_activation, stage_spatial
from .loading import RANDOM_WEIGHTS, LoadedModel, load_image, to_input, unique_labels


@dataclass
class ModelResult:
    """What was read and written for one model and one image."""
    label: str
    out_dir: str
    record: AttentionRecord
    files: List[str] = field(default_factory=list)
    #: stage -> {layer name: channel-type gate values drawn in stage{S}_channel.png}
    channel_drawn: Dict[int, Dict[str, np.ndarray]] = field(default_factory=dict)


@dataclass
class ImageResult:
    image: str
    size: tuple
    models: Dict[str, ModelResult] = field(default_factory=dict)
    compare: Optional[str] = None
    #: what each cell of the comparison figure drew (see :func:`~mmattn.visualization.figures.compare_figure`)
    compare_drawn: Optional[dict] = None


def _save_rgb(path: str, image_rgb: np.ndarray) -> str:
    import cv2
    if not cv2.imwrite(path, np.ascontiguousarray(image_rgb[..., ::-1])):
        raise OSError(f'could not write {path}')
    return path


def _weights_note(models: Sequence[LoadedModel]) -> str:
    """For a figure's title: whether its models are untrained."""
    if all(m.weights == RANDOM_WEIGHTS for m in models):
        return f' - {RANDOM_WEIGHTS}: gates as initialised, not learnt'
    return ''


def _row_label(label: str, model: LoadedModel) -> str:
    weights = 'random weights' if model.weights == RANDOM_WEIGHTS else osp.basename(model.weights)
    return f'{label}\n({weights})'


def _write_model(model: LoadedModel, record: AttentionRecord, image_rgb: np.ndarray, image_path: str,
                 out_dir: str) -> ModelResult:
    os.makedirs(out_dir, exist_ok=True)
    result = ModelResult(model.label, out_dir, record)
    arrays, layers_json, stages_json = {}, [], {}
    for stage in record.stages():
        files = {}
        if stage in record.activations:
            files['activation'] = _save_rgb(osp.join(out_dir, f'stage{stage}_activation.png'),
                                            stage_activation(record, stage, image_rgb))
            arrays[f'layer{stage}/activation_mean'] = record.activations[stage][0].mean(0).numpy()
        layers = record.layers_of(stage)
        spatial = stage_spatial(layers, image_rgb)
        if spatial is not None:
            files['spatial'] = _save_rgb(osp.join(out_dir, f'stage{stage}_spatial.png'), spatial)
        channel_path = osp.join(out_dir, f'stage{stage}_channel.png')
        drawn = save_stage_channels(layers, channel_path, f'{model.label} layer{stage}: channel gates')
        if drawn is not None:
            files['channel'] = channel_path
            result.channel_drawn[stage] = drawn
        stages_json[stage] = {k: osp.basename(v) for k, v in files.items()}
        result.files.extend(files.values())
    for layer in record.layers:
        entry = dict(name=layer.name, type=layer.layer_type, stage=layer.stage, block=layer.block, maps={})
        for key, value in layer.maps.items():
            arrays[f'{layer.name}/{key}'] = value[0].numpy()
            entry['maps'][key] = dict(shape=list(value.shape[1:]), min=float(value[0].min()),
                                      max=float(value[0].max()), mean=float(value[0].mean()))
        layers_json.append(entry)
    overview = osp.join(out_dir, 'overview.png')
    compare_figure([(_row_label(model.label, model), record)], image_rgb, overview,
                   f'{model.label}: {osp.basename(image_path)}{_weights_note([model])}')
    result.files.append(overview)
    np.savez_compressed(osp.join(out_dir, 'gates.npz'), **arrays)
    summary = dict(model=model.label, weights=model.weights, image=image_path,
                   input_size=list(image_rgb.shape[:2]), stages=stages_json, layers=layers_json)
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    result.files.extend([osp.join(out_dir, 'gates.npz'), osp.join(out_dir, 'summary.json')])
    return result


def visualize_attention(models: Sequence[LoadedModel], images: Sequence[str], out_dir: str, size: int = 224,
                        stages: Optional[Sequence[int]] = None, blocks: Optional[Sequence[str]] = None
                        ) -> List[ImageResult]:
    """Read and draw the attention of every model on every image (see the module docstring for files).

    Args:
        models: from :func:`~mmattn.visualization.loading.build_model`; several models also write a
            comparison figure per image.
        images: image paths; each is resized so its longer side is ``size``.
        out_dir: output root.
        stages: 1-based stages to draw (default all); blocks: ``'layerS.B'`` names (default all).
    """
    if not models:
        raise ValueError('no model given: pass a config, --backbone NAME or --compare ...')
    if not images:
        raise ValueError('no image given')
    labels = unique_labels([m.label for m in models])
    stems = unique_labels([osp.splitext(osp.basename(p))[0] for p in images])
    results = []
    for path, stem in zip(images, stems):
        image_bgr = load_image(path, size)
        image_rgb = np.ascontiguousarray(image_bgr[..., ::-1])
        result = ImageResult(path, tuple(image_rgb.shape[:2]))
        for model, label in zip(models, labels):
            record = collect_attention(model.backbone, to_input(image_bgr, model), stages, blocks)
            result.models[label] = _write_model(model, record, image_rgb, path, osp.join(out_dir, label, stem))
        if len(models) > 1:
            result.compare = osp.join(out_dir, f'compare_{stem}.png')
            drawn = compare_figure(
                [(_row_label(label, model), result.models[label].record) for model, label in zip(models, labels)],
                image_rgb, result.compare,
                f'{osp.basename(path)} at {image_rgb.shape[1]}x{image_rgb.shape[0]}{_weights_note(models)}')
            result.compare_drawn = {label: cells for label, cells in zip(labels, drawn.values())}
        results.append(result)
    return results
