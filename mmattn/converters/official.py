"""Convert an official ImageNet checkpoint (ECA, SA, CBAM, SGE, EPSANet, SE, torchvision ResNet) into
an mmattn backbone state dict.

Supported sources (all torchvision-layout trunks, usually ``.pth.tar`` files saved by the official
training scripts as ``{'epoch', 'arch', 'state_dict', 'best_acc1'/'best_prec1', 'optimizer'}`` with
DataParallel's ``module.`` prefix):

============  =================================================  ====================================
arch          repository                                         attention keys (per block)
============  =================================================  ====================================
``eca``       BangguWu/ECANet                                    ``eca.conv.weight`` (1, 1, k)
``sa``        wofmanaf/SA-Net                                    ``sa.{cweight,cbias,sweight,sbias}``,
                                                                 ``sa.gn.{weight,bias}``
``cbam``      Jongchan/attention-module                          ``cbam.ChannelGate.mlp.{1,3}.*``,
                                                                 ``cbam.SpatialGate.spatial.{conv,bn}.*``
``sge``       implus/PytorchInsight                              ``sge.{weight,bias}`` (1, G, 1, 1)
``epsa``      murufeng/EPSANet (no weights were released)        ``conv2.conv_{1..4}.weight``,
                                                                 ``conv2.se.fc{1,2}.*``
``se``        moskomule/senet.pytorch                            ``se.fc.{0,2}.weight`` (+ bias)
``resnet``    torchvision                                        none
============  =================================================  ====================================

The output is ``{'state_dict': ..., 'meta': ...}`` with neither the ``module.`` prefix nor the
classifier ``fc.*`` (optionally every key prefixed, e.g. ``--prefix backbone.`` to use it as a
detector's ``load_from``). The architecture, depth and shape-changing hyper-parameters (ECA kernel
sizes per stage, SE/CBAM reduction, SA/SGE groups, PSA kernels/groups/reduction) are read from the
keys and shapes; ``--arch``/``--depth`` only assert what you expect. The backbone is then built and
the converted weights must fill every key with the right shape (strict load), otherwise the tool stops
and lists the missing / unexpected / mismatched keys.
"""
import re
from collections import OrderedDict

from .common import (ConversionError, describe_source, extract_state_dict, infer_depth, per_stage_values,
                     split_by_prefix, strip_prefix, uniform, verify_and_export)

ARCHS = ('eca', 'sa', 'cbam', 'sge', 'epsa', 'se', 'resnet')
#: key fragment (after ``layerS.B.``) that identifies each official layout
SIGNATURES = OrderedDict([
    ('epsa', r'conv2\.conv_1\.weight'),
    ('eca', r'eca\.conv\.weight'),
    ('sa', r'sa\.cweight'),
    ('cbam', r'cbam\.ChannelGate\.mlp\.1\.weight'),
    ('sge', r'sge\.weight'),
    ('se', r'se\.fc\.0\.weight'),
])
#: layouts the other converters handle, recognised to point the user there
FOREIGN = [
    (r'(^|\.)se_layer\.conv1\.conv\.weight$', 'an mmpretrain SE-ResNet (se_layer.conv1.conv.*): use '
     'tools/model_converters/mmpretrain2mmattn.py'),
    (r'(^|\.)se\.fc1\.weight$', 'a timm ResNet with SE (se.fc1/se.fc2 1x1 convs): use '
     'tools/model_converters/timm2mmattn.py'),
    (r'^layer0\.', 'a Caffe-style SENet (layer0.* stem, e.g. Cadene pretrainedmodels / timm legacy_seresnet): '
     'not architecture-equivalent (stride on the 1x1 conv), see timm2mmattn.py --help'),
    (r'^conv1\.0\.weight$', 'a deep-stem ResNet (conv1.0/1/3/4/6, e.g. timm ecaresnet*d): its stem and '
     'avg-pool downsample do not exist in mmattn backbones'),
    (r'(^|\.)att\.dct_layer\.weight$', 'FcaNet (att.dct_layer): not an mmattn backbone'),
]


def detect_arch(sd):
    """The official layout of a (prefix-free) state dict, from its attention keys."""
    found = [arch for arch, sig in SIGNATURES.items()
             if any(re.match(r'^layer\d+\.\d+\.' + sig + '$', k) for k in sd)]
    if len(found) > 1:
        raise ConversionError(f'keys of several attention layouts found ({", ".join(found)}); '
                              'a checkpoint of one official model was expected\n  ' + describe_source(sd))
    if found:
        return found[0]
    for pattern, what in FOREIGN:
        if any(re.search(pattern, k) for k in sd):
            raise ConversionError(f'this looks like {what}\n  the source holds ' + describe_source(sd))
    if any(re.match(r'^layer\d+\.\d+\.conv2\.weight$', k) for k in sd):
        return 'resnet'
    raise ConversionError('no official layout recognised (no layerS.B.conv2 / attention keys)\n  the '
                          'source holds ' + describe_source(sd))


def target_config(arch, sd, depth):
    """mmattn backbone config for the official ``arch`` whose weights are ``sd``."""
    depth, kind = infer_depth(sd, depth)
    if arch == 'resnet':
        return dict(type='ResNet', depth=depth)
    if arch == 'eca':
        ks = per_stage_values(sd, r'eca\.conv\.weight', lambda w: int(w.shape[-1]), 'ECA kernel size')
        return dict(type='ECAResNet', depth=depth, kernel_size=ks)
    if arch == 'se':
        reductions = per_stage_values(sd, r'se\.fc\.0\.weight', lambda w: int(w.shape[1]) // int(w.shape[0]),
                                      'SE reduction')
        bias = any(k.endswith('se.fc.0.bias') for k in sd)
        return se_config(depth, reductions, bias)
    if arch == 'sa':
        # cweight (1, C/(2G), 1, 1) on C = 4 * planes channels
        groups = per_stage_values(sd, r'sa\.cweight', lambda w: int(w.shape[1]), 'SA half-group width')
        chans = per_stage_values(sd, r'conv3\.weight', lambda w: int(w.shape[0]), 'block output channels')
        gs = tuple(c // (2 * h) for c, h in zip(chans, groups))
        g = uniform(gs, 'SA groups')
        if g is None:
            raise ConversionError(f'SA groups differ between stages {gs}; SAResNet takes one value')
        return dict(type='SAResNet', depth=depth, groups=g)
    if arch == 'cbam':
        reductions = per_stage_values(sd, r'cbam\.ChannelGate\.mlp\.1\.weight',
                                      lambda w: int(w.shape[1]) // int(w.shape[0]), 'CBAM reduction')
        r = uniform(reductions, 'CBAM reduction')
        if r is None:
            raise ConversionError(f'CBAM reductions differ between stages {reductions}')
        no_spatial = not any('.cbam.SpatialGate.' in k for k in sd)
        cfg = dict(type='CBAMResNet', depth=depth, reduction=r)
        if no_spatial:
            cfg['no_spatial'] = True
        return cfg
    if arch == 'sge':
        groups = per_stage_values(sd, r'sge\.weight', lambda w: int(w.shape[1]), 'SGE groups')
        g = uniform(groups, 'SGE groups')
        if g is None:
            raise ConversionError(f'SGE groups differ between stages {groups}; SGEResNet takes one value')
        return dict(type='SGEResNet', depth=depth, groups=g)
    if arch == 'epsa':
        if kind != 'bottleneck':
            raise ConversionError('EPSANet has bottleneck blocks only')
        branches = sorted({int(m.group(1)) for k in sd for m in [re.match(r'^layer1\.0\.conv2\.conv_(\d+)\.weight$', k)]
                           if m})
        kernels, groups = [], []
        for i in branches:
            w = sd[f'layer1.0.conv2.conv_{i}.weight']
            planes = int(sd['layer1.0.conv1.weight'].shape[0])
            kernels.append(int(w.shape[-1]))
            groups.append(planes // int(w.shape[1]))
        fc1 = sd['layer1.0.conv2.se.fc1.weight']
        reduction = int(fc1.shape[1]) // int(fc1.shape[0])
        return dict(type='EPSANet', depth=depth, conv_kernels=tuple(kernels), conv_groups=tuple(groups),
                    psa_reduction=reduction)
    raise ConversionError(f'unknown arch {arch!r}')  # pragma: no cover


def se_config(depth, reductions, bias):
    """SEResNet if every stage has the same reduction, else AttentionResNet with one SE per stage."""
    r = uniform(reductions, 'SE reduction')
    if r is not None:
        return dict(type='SEResNet', depth=depth, reduction=r, bias=bias)
    return dict(type='AttentionResNet', depth=depth,
                attention=[dict(type='SE', reduction=x, bias=bias) for x in reductions])


def convert(obj, arch=None, depth=None, use_ema=False, source_name='the source'):
    """Convert a loaded official checkpoint. Returns ``(state_dict, cfg, info, dropped_keys)``."""
    sd, where = extract_state_dict(obj, use_ema)
    sd, _ = strip_prefix(sd, 'module.')
    if any(k.startswith('backbone.') for k in sd):
        raise ConversionError('keys start with backbone.: this is an mmdet/mmpretrain checkpoint, not an '
                              'official one (mmpretrain SE-ResNet: use mmpretrain2mmattn.py)\n  the source holds '
                              + describe_source(sd))
    kept, dropped = split_by_prefix(sd, ('fc.', ))
    detected = detect_arch(kept)
    if arch is not None and arch != detected:
        raise ConversionError(f'--arch {arch} was given but {source_name} holds an official {detected!r} '
                              f'layout\n  the source holds ' + describe_source(kept))
    cfg = target_config(detected, kept, depth)
    state, info = verify_and_export(cfg, kept, kept, f'{source_name} ({where})')
    return state, cfg, info, list(dropped)
