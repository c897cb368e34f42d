"""MMDetection integration: importing this module registers every attention layer and backbone into
``mmdet.registry.MODELS`` (use ``custom_imports=dict(imports=['mmattn.models'])`` in configs)."""
from .registry import register_attention_layers  # noqa: F401  (registers the layers on import)
from .backbones import (CBAMResNet, ECAResNet, EPSANet, SAResNet, SEResNet,  # noqa: E402
                        SGEResNet, AttentionResNet)

__all__ = ['AttentionResNet', 'CBAMResNet', 'ECAResNet', 'EPSANet', 'SAResNet', 'SEResNet', 'SGEResNet']
