"""Training-loop hooks of mmattn, registered in mmengine's root ``HOOKS`` on import (so mmdet- and
mmseg-scoped configs both find them).

:func:`add_default_hooks` adds them to a config; ``tools/train.py`` does so for every run.
"""
from .hooks import (NonFiniteCheckHook, NonFiniteTrainingError, RandomStateHook,
                    add_default_hooks)

__all__ = ['NonFiniteCheckHook', 'NonFiniteTrainingError', 'RandomStateHook', 'add_default_hooks']
