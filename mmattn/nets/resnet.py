"""A Bottleneck ResNet with an attention layer in every block, in plain torch (torchvision layout).

The same network as the mmdet backbones of :mod:`mmattn.models` (``AttentionResNet`` and its presets,
``EPSANet``) with ``style='pytorch'`` (stride on the 3x3 conv), built without mmcv/mmdet so that it
runs on a machine that has only torch. Keys are those of the mmdet backbones and of the official
checkpoints: ``conv1``, ``bn1``, ``layerS.B.{conv,bn}{1,2,3}``, ``layerS.0.downsample.{0,1}``, the
attention layer under its plugin name (``layerS.B.<se|eca|sa|cbam|sge>.*``) and, for EPSANet, the PSA
module as ``conv2`` (``layerS.B.conv2.conv_{1..4}``, ``conv2.se.fc{1,2}``). A backbone's
``state_dict`` therefore loads here with ``strict=True`` and gives the same stage outputs.

Each block ends as the mmdet blocks do: ``conv2`` through :func:`mmattn.fused.fused_forward` (the PSA
module's fused form; a plain conv has none) and ``identity + gate(bn3(conv3(out)))`` through
:func:`mmattn.fused.gated_residual`, so the fused switch (:mod:`mmattn.fused.config`) acts on this
network exactly as on the backbones.
"""
from typing import Dict, Optional, Sequence, Union

import torch
from torch import nn

from ..fused import fused_forward, gated_residual
from ..layers import PSAModule, create_attention, get_attention_layer
from ..layers.eca import RELEASED_KERNEL_SIZES

AttentionCfg = Union[None, dict, Sequence[Optional[dict]]]

#: depth -> blocks per stage
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}

#: family -> the default arguments of its mmdet backbone (``SEResNet()`` ... ``EPSANet()``)
FAMILIES: Dict[str, dict] = {
    'resnet': dict(),
    'se': dict(attention=dict(type='se', reduction=16, bias=True)),
    'eca': dict(attention='released'),
    'sa': dict(attention=dict(type='sa', groups=64)),
    'cbam': dict(attention=dict(type='cbam', reduction=16)),
    'sge': dict(attention=dict(type='sge', groups=64)),
    'epsanet': dict(psa=dict(conv_kernels=(3, 5, 7, 9), conv_groups=(1, 4, 8, 16), reduction=16)),
}


def family_config(family: str, depth: int = 50) -> dict:
    """The :class:`ResNet` keyword arguments of ``family`` (a key of :data:`FAMILIES`) at ``depth``."""
    if family not in FAMILIES:
        raise ValueError(f'unknown family {family!r}; available: {", ".join(FAMILIES)}')
    cfg = dict(FAMILIES[family])
    if cfg.get('attention') == 'released':
        cfg['attention'] = [dict(type='eca', kernel_size=k) for k in RELEASED_KERNEL_SIZES.get(depth, (3, ) * 4)]
    return cfg


class Bottleneck(nn.Module):
    """ResNet v1.5 Bottleneck (stride on conv2) with an optional attention gate before the residual add.

    Args:
        inplanes (int): input channels.
        planes (int): width of the 3x3 conv; the block outputs ``4 * planes`` channels.
        stride (int): stride of conv2.
        downsample (nn.Module | None): the identity branch (1x1 conv + BN) when shape changes.
        attention (dict | None): attention layer config (``type`` and its arguments), built for
            ``4 * planes`` channels and named by its plugin name (``se``, ``eca``, ...).
        psa (dict | None): PSA arguments (``conv_kernels``, ``conv_groups``, ``reduction``); conv2 is then
            a :class:`~mmattn.layers.PSAModule` (EPSANet).
    """
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 attention: Optional[dict] = None, psa: Optional[dict] = None):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        if psa is None:
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        else:
            self.conv2 = PSAModule(planes, planes, stride=stride, **psa)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.gate_name = None
        if attention is not None:
            cfg = dict(attention)
            layer_type = cfg.pop('type')
            self.gate_name = get_attention_layer(layer_type)._abbr_
            self.add_module(self.gate_name, create_attention(layer_type, out_channels, **cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(fused_forward(self.conv2, out)))
        u = self.conv3(out)
        out = self.bn3(u)
        identity = x if self.downsample is None else self.downsample(x)
        if self.gate_name is None:
            out = out + identity
        else:
            out = gated_residual(getattr(self, self.gate_name), out, identity, overwrite_x=True, bn=self.bn3,
                                 bn_input=u)
        return self.relu(out)


class ResNet(nn.Module):
    """Bottleneck ResNet (depth 50/101/152) returning the outputs of the stages in ``out_indices``.

    Args:
        depth (int): 50, 101 or 152.
        attention (dict | Sequence[dict | None] | None): one attention config for every stage, or one per
            stage (None: no attention in that stage), as ``AttentionResNet(attention=...)``.
        psa (dict | None): PSA arguments: conv2 of every block is a PSA module (EPSANet).
        stage_blocks (Sequence[int] | None): blocks per stage instead of the depth's (e.g. (1, 1, 1, 1) for a
            small network with every stage's shapes).
        base_channels (int): stem width and planes of the first stage, doubled every stage (mmdet's
            ``base_channels``). Default 64.
        out_indices (Sequence[int]): stages whose outputs are returned. Default all four.
    """

    def __init__(self, depth: int = 50, attention: AttentionCfg = None, psa: Optional[dict] = None,
                 stage_blocks: Optional[Sequence[int]] = None, base_channels: int = 64,
                 out_indices: Sequence[int] = (0, 1, 2, 3)):
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f'ResNet: depth must be one of {sorted(STAGE_BLOCKS)} (Bottleneck networks), '
                             f'got {depth!r}')
        blocks = tuple(STAGE_BLOCKS[depth] if stage_blocks is None else stage_blocks)
        if len(blocks) != 4 or not all(isinstance(n, int) and n > 0 for n in blocks):
            raise ValueError(f'ResNet: stage_blocks must be 4 positive ints, got {stage_blocks!r}')
        if attention is None or isinstance(attention, dict):
            per_stage = [attention] * 4
        else:
            per_stage = list(attention)
            if len(per_stage) != 4:
                raise ValueError(f'ResNet: attention has {len(per_stage)} per-stage configs; give one dict '
                                 '(or None) per stage, one dict for all, or None')
        bad = [i for i in out_indices if i not in range(4)]
        if bad or not out_indices:
            raise ValueError(f'ResNet: out_indices must be a non-empty subset of 0..3, got {out_indices!r}')
        self.out_indices = tuple(out_indices)
        self.conv1 = nn.Conv2d(3, base_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = base_channels
        for i, (n, att) in enumerate(zip(blocks, per_stage)):
            planes, stride = base_channels * 2**i, 1 if i == 0 else 2
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion))
            layers = []
            for j in range(n):
                first = j == 0
                layers.append(Bottleneck(inplanes, planes, stride if first else 1,
                                         downsample if first else None, attention=att, psa=psa))
                inplanes = planes * Bottleneck.expansion
            self.add_module(f'layer{i + 1}', nn.Sequential(*layers))

    def forward(self, x: torch.Tensor):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(4):
            x = getattr(self, f'layer{i + 1}')(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


def build_resnet(family: str = 'resnet', depth: int = 50, **kwargs) -> ResNet:
    """The ``family`` network (a key of :data:`FAMILIES`) at ``depth``; ``kwargs`` go to :class:`ResNet`
    (an ``attention`` or ``psa`` given there replaces the family's)."""
    return ResNet(depth, **{**family_config(family, depth), **kwargs})
