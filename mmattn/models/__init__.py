"""MMDetection (and, when installed, MMSegmentation) integration: importing this module registers every
attention layer and backbone into ``mmdet.registry.MODELS`` (the backbones also into ``mmseg.registry.MODELS``;
use ``custom_imports=dict(imports=['mmattn.models'])`` in configs)."""
from .registry import register_attention_layers  # noqa: F401  (registers the layers on import)
from . import backbones  # noqa: E402
from .backbones import *  # noqa: E402,F401,F403  (as mmdet.models: a new backbone is exported once, there)

# mmseg is an optional extra (pip install mmattn[seg]): when it is installed, the backbones are registered
# in its MODELS too, so mmseg-scoped configs find them by their plain names. A broken mmseg install
# (e.g. an incompatible mmcv) still raises.
try:
    import mmseg  # noqa: F401,E402
except ModuleNotFoundError as e:
    if e.name != 'mmseg':
        raise
else:
    from . import seg  # noqa: F401,E402

__all__ = list(backbones.__all__)
