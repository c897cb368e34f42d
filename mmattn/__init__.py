"""mmattn: CNN attention modules (SE, ECA, SA, PSA, CBAM, SGE) as MMDetection backbones.

``import mmattn`` stays light: the attention layers in :mod:`mmattn.layers` need only torch.
Importing :mod:`mmattn.models` registers the layers and backbones into ``mmdet.registry.MODELS``.
"""
from .version import __version__

__all__ = ['__version__']
