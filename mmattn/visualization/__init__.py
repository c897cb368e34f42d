"""Draw what the attention layers of a backbone compute: spatial gates, channel gates, stage outputs.

The gates are read from the layers themselves (each layer's ``attention_maps``, called by a hook on the
tensor the layer receives), so what is drawn is what the network computes. The command line is
``tools/visualization/vis_attention.py``; see ``docs/visualization.md``.

``import mmattn.visualization`` needs torch and numpy only; building models and drawing import mmengine,
mmdet, OpenCV and matplotlib when called.
"""
from .api import ImageResult, ModelResult, visualize_attention
from .collect import AttentionRecord, LayerMaps, attention_layers, collect_attention
from .loading import LoadedModel, build_model, load_image

__all__ = ['AttentionRecord', 'ImageResult', 'LayerMaps', 'LoadedModel', 'ModelResult', 'attention_layers',
           'build_model', 'collect_attention', 'load_image', 'visualize_attention']
