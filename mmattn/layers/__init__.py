"""Attention layers in pure torch (no mmcv/mmdet): importable and runnable anywhere.

Each takes ``in_channels`` first, so it also works as an mmdet ResNet plugin once
:mod:`mmattn.models` has registered it.
"""
from .cbam import CBAM
from .eca import ECAModule
from .factory import ATTENTION_LAYERS, create_attention, get_attention_layer
from .eca import eca_kernel_size
from .psa import PSAModule
from .se import SEModule
from .sge import SpatialGroupEnhance
from .shuffle_attention import ShuffleAttention

__all__ = [
    'ATTENTION_LAYERS', 'CBAM', 'ECAModule', 'PSAModule', 'SEModule', 'ShuffleAttention',
    'SpatialGroupEnhance', 'create_attention', 'eca_kernel_size', 'get_attention_layer'
]
