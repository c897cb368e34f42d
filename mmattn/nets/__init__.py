"""mmattn's attention ResNets in plain torch (no mmcv/mmengine/mmdet): the blocks of
:mod:`mmattn.models` in torchvision layout, for machines and checks where mmdet is absent.

``build_resnet('se', 50)`` has the same ``state_dict`` keys and shapes as ``SEResNet(50)`` of
:mod:`mmattn.models`, and its blocks end with the same fused door (:func:`mmattn.fused.gated_residual`).
"""
from .resnet import FAMILIES, Bottleneck, ResNet, build_resnet, family_config

__all__ = ['FAMILIES', 'Bottleneck', 'ResNet', 'build_resnet', 'family_config']
