"""Convert an mmpretrain (mmcls) SE-ResNet / ResNet ImageNet checkpoint into an mmattn backbone checkpoint.

mmpretrain layout (``configs/seresnet``, e.g. ``se-resnet50_batch256_imagenet_20200804-ae206104.pth``):
``{'meta', 'state_dict'}`` whose keys are prefixed ``backbone.`` (trunk) and ``head.`` (classifier
``head.fc.*``, dropped). The trunk names are mmdet's (``conv1``, ``bn1``, ``layerS.B.conv1/bn1/...``,
``layerS.0.downsample.{0,1}``). Its SE layer is ``layerS.B.se_layer`` with two ``ConvModule``\\ s::

    se_layer.conv1.conv.weight (r, C, 1, 1)   se_layer.conv1.conv.bias (r,)    -> se.fc.0.weight (r, C), se.fc.0.bias
    se_layer.conv2.conv.weight (C, r, 1, 1)   se_layer.conv2.conv.bias (C,)    -> se.fc.2.weight (C, r), se.fc.2.bias

with ReLU between and a sigmoid after: the same function as :class:`mmattn.layers.SEModule` with the
1x1 convs written as Linear layers. The target is ``SEResNet(depth, reduction=C // r, bias=True)``
(``AttentionResNet`` with one SE config per stage if the reduction differs between stages); a plain
mmpretrain ResNet becomes mmdet's ``ResNet``. mmpretrain's ``ResNetV1c/V1d`` (deep ``stem.*``,
avg-pool downsample) are refused: those layers do not exist in mmattn backbones.
"""
import re
from collections import OrderedDict

from .common import (ConversionError, describe_source, extract_state_dict, infer_depth, per_stage_values,
                     se_conv_as_linear, split_by_prefix, strip_prefix, verify_and_export)
from .official import se_config

_SE = re.compile(r'^(layer\d+\.\d+\.)se_layer\.conv([12])\.conv\.(weight|bias)$')


def rename(sd):
    """mmpretrain trunk + se_layer keys -> mmattn keys (SE 1x1 conv weights flattened to Linear)."""
    out = OrderedDict()
    for k, v in sd.items():
        m = _SE.match(k)
        if m:
            block, idx, kind = m.groups()
            out[f'{block}se.fc.{0 if idx == "1" else 2}.{kind}'] = se_conv_as_linear(k, v)
        else:
            out[k] = v
    return out


def convert(obj, depth=None, use_ema=False, source_name='the source'):
    """Convert a loaded mmpretrain checkpoint. Returns ``(state_dict, cfg, info, dropped_keys)``."""
    sd, where = extract_state_dict(obj, use_ema)
    sd, _ = strip_prefix(sd, 'module.')
    if not any(k.startswith('backbone.') for k in sd):
        raise ConversionError(f'{source_name} has no backbone.* keys: not an mmpretrain classifier '
                              'checkpoint (official repos: use official2mmattn.py; timm: timm2mmattn.py)\n'
                              '  the source holds ' + describe_source(sd))
    trunk, dropped = split_by_prefix(sd, ('head.', 'neck.', 'data_preprocessor.'))
    others = [k for k in trunk if not k.startswith('backbone.')]
    if others:
        raise ConversionError(f'{len(others)} keys outside backbone./neck./head.: {others[:10]}')
    trunk, _ = strip_prefix(trunk, 'backbone.')
    if any(k.startswith('stem.') for k in trunk):
        raise ConversionError('the backbone has a deep stem (stem.*): mmpretrain ResNetV1c/V1d, whose stem and '
                              'avg-pool downsample do not exist in mmattn backbones\n  the source holds '
                              + describe_source(trunk))
    if any(re.search(r'\.downsample\.2\.', k) for k in trunk):
        raise ConversionError('downsample has 3 layers (avg-pool downsample, ResNetV1d): not supported')
    converted = rename(trunk)
    depth, _ = infer_depth(converted, depth)
    if any('.se.fc.0.weight' in k for k in converted):
        reductions = per_stage_values(converted, r'se\.fc\.0\.weight',
                                      lambda w: int(w.shape[1]) // int(w.shape[0]), 'SE reduction')
        bias = any(k.endswith('se.fc.0.bias') for k in converted)
        cfg = se_config(depth, reductions, bias)
    else:
        cfg = dict(type='ResNet', depth=depth)
    state, info = verify_and_export(
        cfg, converted, trunk, f'{source_name} ({where}, backbone.*)',
        hint='expected mmpretrain ResNet/SEResNet keys: conv1, bn1, layerS.B.{conv,bn}{1,2,3}, '
        'layerS.0.downsample.{0,1}, layerS.B.se_layer.conv{1,2}.conv.{weight,bias}')
    return state, cfg, info, list(dropped)
