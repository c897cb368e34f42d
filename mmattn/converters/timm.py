"""Convert a timm ResNet-family checkpoint (``seresnet50``, ``seresnet101``, ``resnet50`` ...) into an
mmattn backbone checkpoint.

timm's ``timm.models.resnet.ResNet`` with the default stem has torchvision key names, and keeps its
attention module under ``se`` whatever its type:

* SE (``seresnet18/34/50/101/152``): ``se.fc1.weight`` (r, C, 1, 1) + ``se.fc1.bias``, ``se.fc2.*``
  (1x1 convs with bias, ReLU between, sigmoid gate, mean pooling) -> ``se.fc.0.*`` / ``se.fc.2.*`` of
  :class:`mmattn.layers.SEModule`. timm rounds the hidden width to a multiple of 8 (8 instead of 4 on
  64 channels, seresnet18/34), so the reduction is read per stage from the shapes
  (``AttentionResNet`` with one SE per stage when the stages differ).
* ECA on a default-stem ResNet (``attn_layer='eca'``): ``se.conv.weight`` (1, 1, k) ->
  ``eca.conv.weight`` (same math as the official ECA, zero padding).
* no attention (``resnet50`` ...): mmdet ``ResNet``.

Refused, with the reason:

* ``legacy_seresnet*`` / Cadene ``se_resnet*`` (``layer0.*`` stem, ``last_linear``,
  ``se_module.*``): Caffe SENet layout with the stride on the first 1x1 conv of each downsampling
  block (mmattn puts it on the 3x3 conv like torchvision), so the same weights compute a different
  function; renaming keys would silently give a wrong network.
* ``ecaresnet*d`` / ``*t`` / ``ecaresnetlight`` / ``seresnet*d`` (deep stem ``conv1.0/1/3/4/6``,
  avg-pool downsample ``downsample.1/2``): those layers do not exist in mmattn backbones.
* ``seresnext*`` (grouped 3x3 conv), timm CBAM (``se.channel``/``se.spatial``, no MLP bias,
  mean-first spatial pooling), SE with a norm layer (``se.bn``), and anything else whose keys do not
  fill the target backbone exactly.

Not detectable from keys: timm's ``CecaModule`` ('ceca', circular padding) has exactly the keys of
``EcaModule``; a checkpoint of a ceca model would convert but the mmattn ECA pads with zeros. Do not
feed such checkpoints.
"""
import re
from collections import OrderedDict

from .common import (ConversionError, describe_source, extract_state_dict, infer_depth, load_source,
                     per_stage_values, se_conv_as_linear, split_by_prefix, strip_prefix, verify_and_export)
from .official import se_config

_SE = re.compile(r'^(layer\d+\.\d+\.)se\.fc([12])\.(weight|bias)$')
_ECA = re.compile(r'^(layer\d+\.\d+\.)se\.conv\.weight$')

#: (key regex, reason) of timm layouts that are not architecture-equivalent to an mmattn backbone
REFUSED = [
    (r'^layer0\.|^last_linear\.|\.se_module\.',
     'legacy_seresnet* (Caffe SENet layout: layer0.* stem, se_module, last_linear): the stride sits on the '
     'first 1x1 conv of each downsampling block instead of the 3x3 conv, so the network is not the '
     'torchvision-style SE-ResNet mmattn implements; renaming its keys would give a different function. '
     'Use timm "seresnet50"/"seresnet101" weights instead'),
    (r'^conv1\.0\.weight$',
     'a deep-stem ResNet-D/T (conv1.0/1/3/4/6, e.g. ecaresnet50d, ecaresnet101d, ecaresnet50t, '
     'seresnet50d): its 3-conv stem and avg-pool downsample (downsample.1/2) do not exist in mmattn '
     'backbones'),
    (r'\.downsample\.2\.',
     'avg-pool downsample (downsample = AvgPool, conv, BN; ResNet-D): not in mmattn backbones'),
    (r'\.se\.(channel|spatial)\.',
     'timm CBAM (se.channel / se.spatial): no MLP bias and mean-first spatial pooling, unlike the official '
     'CBAM that mmattn implements'),
    (r'\.se\.bn\.', 'an SE module with a norm layer (se.bn), which mmattn SE does not have'),
]


def check_refused(sd):
    for pattern, reason in REFUSED:
        hits = [k for k in sd if re.search(pattern, k)]
        if hits:
            raise ConversionError(f'refused: this is {reason}.\n  matching keys: {hits[:5]}\n  the source '
                                  'holds ' + describe_source(sd))
    grouped = [k for k, v in sd.items()
               if re.match(r'^layer\d+\.\d+\.conv2\.weight$', k) and v.dim() == 4 and v.shape[-1] == 3
               and f'{k[:-len("conv2.weight")]}conv3.weight' in sd and v.shape[1] != v.shape[0]]
    if grouped:
        raise ConversionError(f'refused: grouped 3x3 convs ({grouped[0]} has shape {tuple(sd[grouped[0]].shape)}): '
                              'a ResNeXt (e.g. seresnext50_32x4d), not supported by mmattn backbones')


def rename(sd):
    out = OrderedDict()
    for k, v in sd.items():
        m = _SE.match(k)
        e = _ECA.match(k)
        if m:
            block, idx, kind = m.groups()
            out[f'{block}se.fc.{0 if idx == "1" else 2}.{kind}'] = se_conv_as_linear(k, v)
        elif e:
            if v.dim() != 3 or v.shape[:2] != (1, 1):
                raise ConversionError(f'{k} has shape {tuple(v.shape)}; timm EcaModule has a (1, 1, k) Conv1d')
            out[f'{e.group(1)}eca.conv.weight'] = v
        else:
            out[k] = v
    return out


def convert(obj, depth=None, use_ema=False, source_name='the source'):
    """Convert a loaded timm checkpoint. Returns ``(state_dict, cfg, info, dropped_keys)``."""
    sd, where = extract_state_dict(obj, use_ema)
    sd, _ = strip_prefix(sd, 'module.')
    check_refused(sd)
    kept, dropped = split_by_prefix(sd, ('fc.', ))
    converted = rename(kept)
    depth, _ = infer_depth(converted, depth)
    if any('.se.fc.0.weight' in k for k in converted):
        reductions = per_stage_values(converted, r'se\.fc\.0\.weight',
                                      lambda w: int(w.shape[1]) // int(w.shape[0]), 'SE reduction')
        hidden = per_stage_values(converted, r'se\.fc\.0\.weight', lambda w: int(w.shape[0]), 'SE width')
        chans = per_stage_values(converted, r'se\.fc\.0\.weight', lambda w: int(w.shape[1]), 'SE channels')
        inexact = [(c, h) for c, h in zip(chans, hidden) if c % h]
        if inexact:
            raise ConversionError(f'SE hidden widths {inexact} (channels, width) are not C // reduction for an '
                                  'integer reduction; mmattn SEModule cannot hold them')
        cfg = se_config(depth, reductions, any(k.endswith('se.fc.0.bias') for k in converted))
    elif any(k.endswith('.eca.conv.weight') for k in converted):
        ks = per_stage_values(converted, r'eca\.conv\.weight', lambda w: int(w.shape[-1]), 'ECA kernel size')
        cfg = dict(type='ECAResNet', depth=depth, kernel_size=ks)
    else:
        cfg = dict(type='ResNet', depth=depth)
    state, info = verify_and_export(
        cfg, converted, kept, f'{source_name} ({where})',
        hint='expected a timm ResNet with the default stem: conv1, bn1, layerS.B.{conv,bn}{1,2,3}, '
        'layerS.0.downsample.{0,1}, layerS.B.se.fc{1,2}.{weight,bias} (SE) or layerS.B.se.conv.weight (ECA)')
    return state, cfg, info, list(dropped)


def load_timm_file(path, trust_source=False):
    """``.safetensors`` (Hugging Face hub timm weights) or a torch pickle."""
    if path.endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ConversionError('reading .safetensors needs the safetensors package (pip install '
                                  'safetensors)') from None
        return load_file(path, device='cpu')
    return load_source(path, trust_source)
