"""Code the tools share: the backbone list and labels, models built from configs, complexity counting,
reading work dirs, and the metafiles.

Importing this package needs torch only; mmengine / mmdet are imported inside the functions that use
them, and by the submodules ``complexity``, ``paper_conventions``, ``work_dirs``, ``results``,
``summary`` and ``metafile`` (PyYAML), which this file does not import.
"""
from .build import (ClassifierWrapper, DetectorWrapper, build_backbone, build_detector, collect_configs,
                    count_params, read_config)
from .names import REFERENCE, backbone_label, backbone_types, detector_label, expand_backbone_specs

__all__ = [
    'REFERENCE', 'backbone_label', 'backbone_types', 'detector_label', 'expand_backbone_specs', 'ClassifierWrapper',
    'DetectorWrapper', 'build_backbone', 'build_detector', 'collect_configs', 'count_params', 'read_config'
]
