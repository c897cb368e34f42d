"""Build any attention layer by name: ``create_attention('eca', 256, kernel_size=5)``.

Names are case-insensitive and accept the short name (``se``), the class name (``SEModule``) or the
registry alias (``SE``). Adding a module means one layer file plus one line in ``ATTENTION_LAYERS``.
"""
from typing import Dict, Type, Union

from torch import nn

from .cbam import CBAM
from .eca import ECAModule
from .psa import PSAModule
from .se import SEModule
from .sge import SpatialGroupEnhance
from .shuffle_attention import ShuffleAttention

#: short name -> layer class. The short names are also the mmdet registry aliases (upper case).
ATTENTION_LAYERS: Dict[str, Type[nn.Module]] = {
    'se': SEModule,
    'eca': ECAModule,
    'sa': ShuffleAttention,
    'psa': PSAModule,
    'cbam': CBAM,
    'sge': SpatialGroupEnhance,
}
_LOOKUP = {**{k: v for k, v in ATTENTION_LAYERS.items()},
           **{cls.__name__.lower(): cls for cls in ATTENTION_LAYERS.values()}}


def get_attention_layer(name: Union[str, Type[nn.Module]]) -> Type[nn.Module]:
    """Return the layer class for ``name`` (a class is returned as is)."""
    if isinstance(name, type):
        return name
    if not isinstance(name, str) or name.lower() not in _LOOKUP:
        choices = ', '.join(f'{k} ({v.__name__})' for k, v in ATTENTION_LAYERS.items())
        raise ValueError(f'unknown attention type {name!r}; available: {choices}')
    return _LOOKUP[name.lower()]


def create_attention(name: Union[str, Type[nn.Module]], in_channels: int, **kwargs) -> nn.Module:
    """Build attention layer ``name`` for ``in_channels`` channels with its keyword arguments."""
    return get_attention_layer(name)(in_channels, **kwargs)
