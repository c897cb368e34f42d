"""Register the pure-torch attention layers into ``mmdet.registry.MODELS``.

Each layer is registered under its class name and its upper-case short name (``SEModule`` and ``SE``),
so ``plugins=[dict(cfg=dict(type='SE'), position='after_conv3')]`` works in mmdet-scoped configs.
"""
from mmdet.registry import MODELS

from ..layers import ATTENTION_LAYERS


def register_attention_layers() -> None:
    """Register every layer of :data:`mmattn.layers.ATTENTION_LAYERS` (idempotent)."""
    for short, cls in ATTENTION_LAYERS.items():
        for name in (cls.__name__, short.upper()):
            registered = MODELS.get(name) if name in MODELS.module_dict else None
            if registered is None:
                MODELS.register_module(name=name, module=cls)
            elif registered is not cls:
                raise RuntimeError(f'mmattn: {name!r} is already registered in mmdet MODELS as '
                                   f'{registered!r}; refusing to shadow it')


register_attention_layers()
