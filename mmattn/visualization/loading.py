"""What the attention visualizer reads: images, and a backbone from a config or a registered name.

A model is given as a config file (mmdet, or mmseg when it is installed: its ``model.backbone`` is
built, and its ``model.data_preprocessor`` gives the normalisation) or as the name of a registered
backbone (``SAResNet``: default widths, ImageNet normalisation). Weights come from a checkpoint (a
detector/segmentor checkpoint, whose ``backbone.*`` keys are taken, or an ImageNet backbone checkpoint
in the mmattn layout), from the config's own ``Pretrained`` ``init_cfg`` when that file exists, or are
left random as each module's constructor initialises them. mmengine and mmdet are imported inside the
functions.
"""
import importlib
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

#: ImageNet mean / std (RGB, 0-255), mmdet's defaults, for bare backbones
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

#: weights description of a backbone that no checkpoint initialised
RANDOM_WEIGHTS = 'random weights (untrained)'

_CHECKPOINT_EXTS = ('.pth', '.pt', '.pth.tar', '.ckpt', '.bin')


@dataclass
class LoadedModel:
    """A backbone ready to be read, and how its inputs are normalised.

    Attributes:
        label: row label in figures and directory name, e.g. ``'SAResNet-50'`` or the config's stem.
        backbone: the backbone, in eval mode.
        mean, std: per-channel normalisation (0-255 scale), in the order the model reads channels.
        bgr_to_rgb: whether the model reads RGB (images are loaded as BGR).
        weights: where the weights came from (a path, or :data:`RANDOM_WEIGHTS`).
    """
    label: str
    backbone: nn.Module
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD
    bgr_to_rgb: bool = True
    weights: str = RANDOM_WEIGHTS


def is_checkpoint_path(path: str) -> bool:
    """Whether ``path`` names a checkpoint file (by its extension)."""
    return str(path).lower().endswith(_CHECKPOINT_EXTS)


def split_model_arg(text: str) -> Tuple[str, Optional[str]]:
    """``'CONFIG_OR_BACKBONE=CHECKPOINT'`` -> (source, checkpoint); without ``=``, no checkpoint."""
    source, sep, checkpoint = str(text).partition('=')
    if sep and not checkpoint:
        raise ValueError(f'{text!r}: nothing after "="; write CONFIG_OR_BACKBONE=CHECKPOINT, or drop the "="')
    return source, (checkpoint or None)


# ---------------------------------------------------------------------------------------------- images
def load_image(path: str, size: int) -> np.ndarray:
    """Read ``path`` (BGR, as OpenCV and mmcv read it) and resize it so its longer side is ``size``.

    Returns the (H, W, 3) uint8 BGR image.
    """
    import cv2
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f'size must be an int >= 32 (the backbone downsamples by 32), got {size!r}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path!r} does not exist')
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'image {path!r} could not be read by OpenCV (not an image, or a format it lacks: '
                         'use PNG or JPEG)')
    h, w = image.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def to_input(image_bgr: np.ndarray, model: LoadedModel) -> torch.Tensor:
    """The (1, 3, H, W) float tensor ``model`` reads: channel order and normalisation of its config."""
    image = image_bgr[..., ::-1] if model.bgr_to_rgb else image_bgr
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    mean = torch.tensor(model.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(model.std, dtype=torch.float32).view(-1, 1, 1)
    return ((x - mean) / std)[None]


# ---------------------------------------------------------------------------------------------- weights
def load_backbone_weights(backbone: nn.Module, path: str) -> None:
    """Load checkpoint ``path`` (weights only, never code) into ``backbone``.

    A detector's or segmentor's checkpoint gives its ``backbone.*`` tensors. Every backbone tensor must
    be there with its shape (an ImageNet classifier's ``fc.*`` may be left over): drawing a partly random
    backbone as if it were the trained one would mislead, so a partial checkpoint fails with a summary.
    """
    from ..utils.checkpoint import load_checkpoint_file
    from ..utils.pretrained import check_coverage, extract_state_dict, select_prefix
    state = extract_state_dict(load_checkpoint_file(path))
    prefix = 'backbone.' if any(k.startswith('backbone.') for k in state) else None
    state = select_prefix(state, prefix)
    check_coverage(backbone.state_dict(), state, source=f'checkpoint {path}', prefix=prefix,
                   opt_in='convert it or pass a checkpoint of this backbone (the visualizer draws fully '
                   'loaded backbones only)')
    backbone.load_state_dict(state, strict=False)


def _local_pretrained(init_cfg) -> Optional[str]:
    """The local file of a ``Pretrained`` ``init_cfg``, if it exists."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for cfg in cfgs:
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            path = cfg.get('checkpoint')
            if isinstance(path, str) and '://' not in path and osp.isfile(path):
                return path
    return None


# ---------------------------------------------------------------------------------------------- models
def _registry(scope: str):
    if scope == 'mmdet':
        import mmattn.models  # noqa: F401  (registers the mmattn backbones)
    try:
        return importlib.import_module(f'{scope}.registry').MODELS
    except ImportError as err:
        raise ImportError(f'the config needs the {scope!r} package ({err}); install it (for segmentation '
                          'configs: pip install -r requirements/seg.txt)') from None


def build_named_backbone(name: str, depth: int = 50, checkpoint: Optional[str] = None, seed: int = 0) -> LoadedModel:
    """A registered backbone (mmdet registry, e.g. ``'SAResNet'``) with default widths; random weights
    are drawn from ``seed``."""
    from ..utils.config_check import mmattn_backbones
    models = _registry('mmdet')
    cls = models.get(name)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module) and hasattr(cls, 'arch_settings')):
        raise ValueError(f'backbone {name!r} is not a registered ResNet-style backbone; mmattn backbones: '
                         f'{", ".join(mmattn_backbones())} (or mmdet\'s ResNet); or pass a config file (.py)')
    if depth not in cls.arch_settings:
        raise ValueError(f'{name}: depth {depth} not available; depths: {sorted(cls.arch_settings)}')
    torch.manual_seed(seed)
    backbone = models.build(dict(type=name, depth=depth))
    model = LoadedModel(label=f'{name}-{depth}', backbone=backbone)
    if checkpoint is not None:
        load_backbone_weights(backbone, checkpoint)
        model.weights = checkpoint
    backbone.eval()
    return model


def build_config_backbone(config: str, checkpoint: Optional[str] = None, cfg_options: Optional[dict] = None,
                          seed: int = 0) -> LoadedModel:
    """``model.backbone`` of an mmdet (or mmseg) config, normalised as its ``model.data_preprocessor``;
    random weights are drawn from ``seed``."""
    from mmengine.registry import init_default_scope

    from ..analysis import read_config
    cfg = read_config(config, cfg_options)
    model_cfg = cfg.get('model')
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get('backbone'), dict):
        raise ValueError(f'config {config!r} has no model.backbone to draw')
    scope = cfg.get('default_scope', 'mmdet')
    models = _registry(scope)
    init_default_scope(scope)
    torch.manual_seed(seed)
    backbone = models.build(model_cfg['backbone'])
    model = LoadedModel(label=osp.splitext(osp.basename(config))[0], backbone=backbone)
    pre = model_cfg.get('data_preprocessor') or {}
    if pre.get('mean') is not None and pre.get('std') is not None:
        model.mean, model.std = tuple(map(float, pre['mean'])), tuple(map(float, pre['std']))
        model.bgr_to_rgb = bool(pre.get('bgr_to_rgb', False))
    if checkpoint is not None:
        load_backbone_weights(backbone, checkpoint)
        model.weights = checkpoint
    else:
        pretrained = _local_pretrained(model_cfg['backbone'].get('init_cfg'))
        if pretrained is not None:
            backbone.init_weights()
            model.weights = pretrained
    backbone.eval()
    return model


def build_model(source: str, checkpoint: Optional[str] = None, depth: int = 50,
                cfg_options: Optional[dict] = None, seed: int = 0) -> LoadedModel:
    """A config file (ends with ``.py``) or a registered backbone name, with optional weights (random
    weights are drawn from ``seed``, so a figure of an untrained model is reproducible)."""
    if str(source).endswith('.py'):
        return build_config_backbone(source, checkpoint, cfg_options, seed)
    return build_named_backbone(source, depth, checkpoint, seed)


def unique_labels(labels: Sequence[str]) -> list:
    """Labels made unique by a numeric suffix (two configs of the same name compare side by side)."""
    seen, out = {}, []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f'{label}_{seen[label]}')
    return out
