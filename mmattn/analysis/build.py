"""Models for the analysis tools: detectors and backbones built from configs without downloads or data,
and the wrappers that give them a plain ``model(image)`` call for tracing and timing."""
import copy
import glob
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn


def read_config(path: str, cfg_options: Optional[dict] = None):
    """``mmengine.Config`` of ``path`` with ``cfg_options`` merged."""
    from mmengine.config import Config
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def collect_configs(targets: Sequence[str]) -> List[str]:
    """Config files from files, folders (recursive, ``_base_`` folders skipped) and globs."""
    found = []
    for t in targets:
        if osp.isdir(t):
            in_dir = []
            for root, dirs, files in os.walk(t):
                dirs[:] = [d for d in dirs if d != '_base_' and not d.startswith('.')]
                in_dir += [osp.join(root, f) for f in files if f.endswith('.py')]
            found += sorted(in_dir)
        elif any(ch in t for ch in '*?['):
            found += sorted(glob.glob(t, recursive=True))
        elif osp.isfile(t):
            found.append(t)
        else:
            raise FileNotFoundError(f'{t!r} is not a file, folder or glob that matches anything')
    return list(dict.fromkeys(found))


def _without_init_cfg(cfg):
    """A copy of ``cfg`` with every ``init_cfg`` (and legacy ``pretrained``) set to None."""
    if isinstance(cfg, dict):
        return type(cfg)({k: None if k in ('init_cfg', 'pretrained') else _without_init_cfg(v)
                          for k, v in cfg.items()})
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_without_init_cfg(v) for v in cfg)
    return cfg


def is_segmentation(cfg) -> bool:
    """An MMSegmentation config (its runtime sets ``default_scope='mmseg'``)."""
    return cfg.get('default_scope') == 'mmseg'


def build_detector(cfg) -> nn.Module:
    """``cfg.model`` on CPU in eval mode with every ``init_cfg`` off (nothing downloaded or read); an
    mmseg segmentor for a segmentation config."""
    import mmattn.models  # noqa: F401  (registers the backbones)
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope
    model_cfg = _without_init_cfg(copy.deepcopy(cfg.model))
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')):
        if is_segmentation(cfg):
            import mmseg.models  # noqa: F401  (registers mmseg's modules)
            from mmseg.registry import MODELS
        else:
            import mmdet.models  # noqa: F401  (registers mmdet's modules)
            from mmdet.registry import MODELS
        model = MODELS.build(model_cfg)
    model = revert_sync_batchnorm(model)
    model.eval()
    return model


def build_backbone(spec, **kwargs) -> Tuple[nn.Module, str, int]:
    """``'SEResNet-50'`` (registry ``TYPE-DEPTH``) or a config dict -> ``(backbone, type, depth)``,
    in eval mode, ``init_cfg`` off."""
    import mmattn.models  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    if isinstance(spec, str):
        btype, _, depth = spec.rpartition('-')
        if not btype or not depth.isdigit():
            raise ValueError(f'backbone {spec!r} must be TYPE-DEPTH, e.g. ECAResNet-50')
        spec = dict(type=btype, depth=int(depth))
    cfg = dict(spec, init_cfg=None, **kwargs)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg)
    model.eval()
    return model, cfg['type'], cfg.get('depth')


def backbone_type_depth(model_cfg) -> Tuple[str, Optional[int]]:
    """Backbone registry type (without scope) and depth of a detector's model config."""
    backbone = model_cfg.get('backbone', {}) if hasattr(model_cfg, 'get') else {}
    return str(backbone.get('type', '?')).split('.')[-1], backbone.get('depth')


def num_classes(model_cfg) -> Optional[int]:
    """``num_classes`` of the (first) box head of a detector config, or of a segmentor's decode head."""
    for key in ('bbox_head', 'roi_head', 'decode_head'):
        head = model_cfg.get(key)
        if head is None:
            continue
        head = head.get('bbox_head', head) if key == 'roi_head' else head
        head = head[0] if isinstance(head, (list, tuple)) else head
        if 'num_classes' in head:
            return int(head['num_classes'])
    return None


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class ClassifierWrapper(nn.Module):
    """A backbone, optionally with the ImageNet head (global average pool + ``Linear(C, classes)``)."""

    def __init__(self, backbone: nn.Module, with_head: bool = False, num_classes: int = 1000):
        super().__init__()
        self.backbone = backbone
        self.with_head = with_head
        if with_head:
            with torch.no_grad():
                channels = backbone(torch.zeros(1, 3, 64, 64))[-1].shape[1]
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        feats = tuple(self.backbone(x))
        if not self.with_head:
            return feats
        return self.fc(torch.flatten(self.avgpool(feats[-1]), 1))


def fixed_proposals(num: int, height: int, width: int) -> torch.Tensor:
    """``num`` deterministic boxes (x1, y1, x2, y2) inside the image, sizes log-uniform from 16 px to the
    image size so that all four FPN RoI levels are used, from low-discrepancy sequences so that the
    first 100 (a mask head's RoIs) cover all levels as well."""
    i = torch.arange(num, dtype=torch.float64) + 1
    frac = lambda a: torch.remainder(i * a, 1.0)  # noqa: E731
    longest = max(16.0, float(min(height, width)))
    size = 16.0 * (longest / 16.0)**frac(0.5698402909980532)
    aspect = 2.0**(frac(0.7548776662466927) * 2 - 1)  # 0.5 .. 2
    w = torch.clamp(size * aspect.sqrt(), 2.0, width)
    h = torch.clamp(size / aspect.sqrt(), 2.0, height)
    cx = w / 2 + frac(0.6180339887498949) * (width - w)
    cy = h / 2 + frac(0.4142135623730951) * (height - h)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1).float()


def _tensors(obj) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors(item)]
    return []


class SegmentorWrapper(nn.Module):
    """The network of an mmseg segmentor on a bare image tensor: ``_forward``, i.e. backbone (and
    neck) and decode head, as MMSegmentation's ``get_flops.py`` counts it (no auxiliary head, which
    only trains; no resizing of the logits)."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs):
        return self.segmentor._forward(inputs)


def segmentation_shape(cfg) -> Tuple[int, int]:
    """(H, W) at which a segmentation config is counted: its training crop (``crop_size``, else the
    data preprocessor's ``size``), e.g. 512 x 1024 for Cityscapes, 512 x 512 for ADE20K."""
    size = cfg.get('crop_size') or (cfg.model.get('data_preprocessor') or {}).get('size')
    if not size:
        raise ValueError('the config has neither crop_size nor model.data_preprocessor.size; pass --shape H W')
    return int(size[0]), int(size[1])


class DetectorWrapper(nn.Module):
    """The network of an mmdet detector on a bare image tensor, without post-processing.

    Single-stage detectors run mmdet's ``_forward`` (features + head). Two-stage detectors run the
    features, the RPN head and the RoI head on ``num_proposals`` fixed boxes instead of the RPN's NMS
    output (mmdet v1/v2's ``forward_dummy`` convention, which the papers' counts come from): the
    computation is then independent of the weights.
    """

    def __init__(self, detector: nn.Module, height: int, width: int, num_proposals: int = 1000):
        super().__init__()
        self.detector = detector
        self.height, self.width = height, width
        self.register_buffer('proposals', fixed_proposals(num_proposals, height, width), persistent=False)

    @property
    def two_stage(self) -> bool:
        return getattr(self.detector, 'roi_head', None) is not None

    def _samples(self, batch: int):
        from mmdet.structures import DetDataSample
        shape = (self.height, self.width)
        meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape,
                    scale_factor=(1.0, 1.0))
        return [DetDataSample(metainfo=meta) for _ in range(batch)]

    def forward(self, inputs):
        det, samples = self.detector, self._samples(inputs.shape[0])
        if not self.two_stage:
            return tuple(_tensors(det._forward(inputs, samples)))
        from mmengine.structures import InstanceData
        x = det.extract_feat(inputs)
        outs = [det.rpn_head(x)] if getattr(det, 'rpn_head', None) is not None else []
        proposals = [InstanceData(bboxes=self.proposals) for _ in samples]
        outs.append(det.roi_head.forward(x, proposals, samples))
        return tuple(_tensors(outs))
