"""Checkpoint converters: official / mmpretrain / timm layouts -> mmattn backbones, and publish_model.

Sources are built from the spec (tests/reference.py writes the official layouts; the mmpretrain and
timm layouts are derived here from the documented key names and shapes). A converted checkpoint must
load strictly into the backbone the converter names and reproduce the reference formula's stage
outputs; sources that do not match must be refused with a message naming the problem.
"""
import hashlib
import os.path as osp
import re
from collections import OrderedDict

import pytest
import torch

from mmattn.converters import mmpretrain, official, timm
from mmattn.converters.common import ConversionError, build_backbone
from reference import official_state_dict, reference_forward, save_official_checkpoint
from tools_helpers import load_tool

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _double(sd):
    return OrderedDict((k, v.double() if v.is_floating_point() else v) for k, v in sd.items())


def stage_outputs(cfg, state_dict):
    """Stage outputs of the backbone ``cfg`` loaded strictly with ``state_dict``, in float64 (so that
    fused or re-ordered float32 arithmetic cannot hide or fake a difference)."""
    model = build_backbone(cfg)
    model.load_state_dict(state_dict, strict=True)
    model.double()
    with torch.no_grad():
        return model(X.double())


def reference(sd, arch, depth):
    """The spec's reference network (tests/reference.py) in float64."""
    with torch.no_grad():
        return reference_forward(_double(sd), arch, depth, X.double())


def assert_same_outputs(outs, ref):
    assert len(outs) == len(ref) == 4
    for i, (o, r) in enumerate(zip(outs, ref)):
        assert o.shape == r.shape
        err = (o - r).abs().max().item() / max(r.abs().max().item(), 1.0)
        assert err < 1e-9, f'stage {i + 1}: relative error {err:.2e}'


# ----------------------------------------------------------------------------- official layouts
OFFICIAL = [
    ('resnet', 50, {}, dict(type='ResNet', depth=50)),
    ('se', 50, {}, dict(type='SEResNet', depth=50, reduction=16, bias=False)),
    ('se', 50, dict(se_bias=True), dict(type='SEResNet', depth=50, reduction=16, bias=True)),
    ('eca', 50, {}, dict(type='ECAResNet', depth=50, kernel_size=(3, 5, 5, 7))),
    ('eca', 18, {}, dict(type='ECAResNet', depth=18, kernel_size=(3, 5, 7, 7))),
    ('sa', 50, {}, dict(type='SAResNet', depth=50, groups=64)),
    ('cbam', 50, {}, dict(type='CBAMResNet', depth=50, reduction=16)),
    ('sge', 50, {}, dict(type='SGEResNet', depth=50, groups=64)),
    ('epsa', 50, {}, dict(type='EPSANet', depth=50, conv_kernels=(3, 5, 7, 9), conv_groups=(1, 4, 8, 16),
                          psa_reduction=16)),
]


@pytest.mark.parametrize('arch,depth,kw,expected_cfg', OFFICIAL,
                         ids=[f'{a}{d}{"-bias" if kw else ""}' for a, d, kw, _ in OFFICIAL])
def test_official_round_trip(tmp_path, capsys, arch, depth, kw, expected_cfg):
    src, dst = tmp_path / 'official.pth.tar', tmp_path / 'mmattn.pth'
    sd = save_official_checkpoint(str(src), arch, depth, seed=3, **kw)
    assert load_tool('model_converters/official2mmattn.py').main([str(src), str(dst)]) == 0
    assert 'strict=True' in capsys.readouterr().out
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    out = ckpt['state_dict']
    assert ckpt['meta']['backbone'] == expected_cfg
    # no DataParallel prefix, no classifier, everything else kept bit-exactly
    assert not any(k.startswith(('module.', 'fc.')) for k in out)
    assert set(out) == {k for k in sd if not k.startswith('fc.')}
    assert all(torch.equal(out[k], sd[k]) for k in out)
    assert_same_outputs(stage_outputs(expected_cfg, out), reference(sd, arch, depth))


def test_official_prefix_loads_through_pretrained_init(tmp_path):
    """``--prefix backbone.`` + the config the tool prints (init_cfg with prefix) loads via mmengine."""
    src, dst = tmp_path / 'eca.pth.tar', tmp_path / 'eca_mmattn.pth'
    sd = save_official_checkpoint(str(src), 'eca', 50, seed=4)
    assert load_tool('model_converters/official2mmattn.py').main([str(src), str(dst), '--prefix', 'backbone.']) == 0
    keys = torch.load(dst, weights_only=True)['state_dict']
    assert all(k.startswith('backbone.') for k in keys)
    import mmattn.models  # noqa: F401
    from mmdet.registry import MODELS
    model = MODELS.build(dict(type='ECAResNet', depth=50,
                              init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.')))
    model.init_weights()
    model.eval()
    model.double()
    with torch.no_grad():
        assert_same_outputs(model(X.double()), reference(sd, 'eca', 50))


def test_official_depth_101_and_no_num_batches_tracked(tmp_path):
    """Depth is read from the block counts; a pre-0.4.1 checkpoint (no BN counters) still converts."""
    sd = official_state_dict('eca', 101, seed=5)
    old = OrderedDict((k, v) for k, v in sd.items() if not k.endswith('num_batches_tracked'))
    state, cfg, info, dropped = official.convert({'state_dict': old})
    assert cfg == dict(type='ECAResNet', depth=101, kernel_size=(3, 3, 5, 7))
    assert sorted(dropped) == ['fc.bias', 'fc.weight']
    assert len(info['added_keys']) == sum(k.endswith('num_batches_tracked') for k in sd)


def _refusal(capsys, argv):
    assert load_tool('model_converters/official2mmattn.py').main(argv) == 1
    return capsys.readouterr().err


def test_official_refuses_wrong_arch_and_depth(tmp_path, capsys):
    src = tmp_path / 'sa.pth.tar'
    save_official_checkpoint(str(src), 'sa', 50)
    err = _refusal(capsys, [str(src), str(tmp_path / 'o.pth'), '--arch', 'eca'])
    assert "--arch eca" in err and "'sa'" in err
    err = _refusal(capsys, [str(src), str(tmp_path / 'o.pth'), '--depth', '101'])
    assert 'ResNet-50' in err
    assert not (tmp_path / 'o.pth').exists()


def test_official_refuses_missing_unexpected_and_mismatched_keys(tmp_path):
    sd = official_state_dict('cbam', 50, seed=6)
    broken = OrderedDict(sd)
    del broken['layer3.2.bn2.running_var']
    broken['layer1.0.cbam.extra.weight'] = torch.zeros(3)
    with pytest.raises(ConversionError) as exc:
        official.convert({'state_dict': broken})
    msg = str(exc.value)
    assert 'layer3.2.bn2.running_var' in msg and 'not filled' in msg
    assert 'layer1.0.cbam.extra.weight' in msg and 'no place' in msg
    # a CBAM MLP with a different hidden width in one block of a stage
    odd = OrderedDict(sd)
    odd['layer2.1.cbam.ChannelGate.mlp.1.weight'] = torch.zeros(64, 512)
    with pytest.raises(ConversionError, match='differs between the blocks of layer2'):
        official.convert({'state_dict': odd})
    # a shape mismatch that per-stage inference cannot see: a stem of the wrong width
    wide = OrderedDict(sd)
    wide['conv1.weight'] = torch.zeros(64, 3, 5, 5)
    with pytest.raises(ConversionError, match=r'conv1.weight \(64, 3, 7, 7\) vs \(64, 3, 5, 5\)'):
        official.convert({'state_dict': wide})


def test_official_recognises_foreign_layouts():
    mm = mmpretrain_layout(official_state_dict('se', 50, se_bias=True))
    with pytest.raises(ConversionError, match='mmpretrain2mmattn'):
        official.convert(mm)
    timm = timm_layout(official_state_dict('se', 50, se_bias=True))
    with pytest.raises(ConversionError, match='timm2mmattn'):
        official.convert(timm)


def test_untrusted_pickle_needs_trust_source(tmp_path, capsys):
    src = tmp_path / 'odd.pth.tar'
    sd = official_state_dict('resnet', 50)
    torch.save({'state_dict': sd, 'args': argparse_namespace()}, src)
    err = _refusal(capsys, [str(src), str(tmp_path / 'o.pth')])
    assert '--trust-source' in err
    official2mmattn = load_tool('model_converters/official2mmattn.py')
    assert official2mmattn.main([str(src), str(tmp_path / 'o.pth'), '--trust-source']) == 0


def argparse_namespace():
    import argparse
    return argparse.Namespace(arch='resnet50', lr=0.1)  # training scripts sometimes pickle their args


# ----------------------------------------------------------------------------- mmpretrain layout
_SE_KEY = re.compile(r'^(layer\d+\.\d+\.)se\.fc\.([02])\.(weight|bias)$')


def mmpretrain_layout(sd):
    """mmpretrain SE-ResNet checkpoint from a biased official-SE state dict (names from the spec)."""
    out = OrderedDict()
    for k, v in sd.items():
        if k.startswith('fc.'):
            out['head.' + k] = v
            continue
        m = _SE_KEY.match(k)
        if m:
            block, idx, kind = m.groups()
            k = f'{block}se_layer.conv{1 if idx == "0" else 2}.conv.{kind}'
            v = v[:, :, None, None] if kind == 'weight' else v
        out['backbone.' + k] = v
    return {'meta': {'mmpretrain_version': '1.2.0'}, 'state_dict': out}


def test_mmpretrain_round_trip(tmp_path):
    sd = official_state_dict('se', 50, seed=7, se_bias=True)
    src, dst = tmp_path / 'se-resnet50_mmpretrain.pth', tmp_path / 'se50.pth'
    torch.save(mmpretrain_layout(sd), src)
    assert load_tool('model_converters/mmpretrain2mmattn.py').main([str(src), str(dst)]) == 0
    ckpt = torch.load(dst, weights_only=True)
    cfg = ckpt['meta']['backbone']
    assert cfg == dict(type='SEResNet', depth=50, reduction=16, bias=True)
    out = ckpt['state_dict']
    assert out['layer1.0.se.fc.0.weight'].shape == (16, 256)
    assert torch.equal(out['layer4.2.se.fc.2.weight'], sd['layer4.2.se.fc.2.weight'])
    assert not any('se_layer' in k or k.startswith(('backbone.', 'head.')) for k in out)
    # the same function as the SE formula with the mmpretrain 1x1 convs' weights
    assert_same_outputs(stage_outputs(cfg, out), reference(sd, 'se', 50))


def test_mmpretrain_refusals(capsys):
    sd = official_state_dict('se', 50, se_bias=True)
    with pytest.raises(ConversionError, match='no backbone'):
        mmpretrain.convert({'state_dict': sd})
    deep = mmpretrain_layout(sd)
    deep['state_dict']['backbone.stem.0.conv.weight'] = torch.zeros(32, 3, 3, 3)
    with pytest.raises(ConversionError, match='deep stem'):
        mmpretrain.convert(deep)
    missing = mmpretrain_layout(sd)
    del missing['state_dict']['backbone.layer2.3.se_layer.conv2.conv.bias']
    with pytest.raises(ConversionError, match=r'layer2\.3\.se\.fc\.2\.bias'):
        mmpretrain.convert(missing)


# ----------------------------------------------------------------------------- timm layout
def timm_layout(sd, eca=False):
    """timm ResNet state dict (``se.fc1/fc2`` 1x1 convs, or ``se.conv`` for ECA) from an official one."""
    out = OrderedDict()
    for k, v in sd.items():
        m = _SE_KEY.match(k)
        if m:
            block, idx, kind = m.groups()
            k = f'{block}se.fc{1 if idx == "0" else 2}.{kind}'
            v = v[:, :, None, None] if kind == 'weight' else v
        elif eca and '.eca.conv.weight' in k:
            k = k.replace('.eca.conv.weight', '.se.conv.weight')
        out[k] = v
    return out


def test_timm_seresnet50_round_trip(tmp_path):
    sd = official_state_dict('se', 50, seed=8, se_bias=True)
    src, dst = tmp_path / 'seresnet50.pth', tmp_path / 'se50.pth'
    torch.save(timm_layout(sd), src)
    assert load_tool('model_converters/timm2mmattn.py').main([str(src), str(dst)]) == 0
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['backbone'] == dict(type='SEResNet', depth=50, reduction=16, bias=True)
    assert_same_outputs(stage_outputs(ckpt['meta']['backbone'], ckpt['state_dict']),
                        reference(sd, 'se', 50))


def test_timm_seresnet18_rounded_width_uses_per_stage_reduction():
    """timm rounds the SE width to a multiple of 8: 8 (not 4) on the 64 channels of seresnet18."""
    sd = official_state_dict('se', 18, seed=9, se_bias=True)
    g = torch.Generator().manual_seed(9)
    for k in [k for k in sd if k.startswith('layer1.') and '.se.fc.' in k]:
        shape = tuple(8 if d == 4 else d for d in sd[k].shape)
        sd[k] = torch.randn(shape, generator=g) * 0.2
    state, cfg, _, _ = timm.convert(timm_layout(sd))
    assert cfg['type'] == 'AttentionResNet'
    assert [a['reduction'] for a in cfg['attention']] == [8, 16, 16, 16]
    assert_same_outputs(stage_outputs(cfg, state), reference(sd, 'se', 18))


def test_timm_eca_on_default_stem():
    sd = official_state_dict('eca', 50, seed=10)
    for k in list(sd):  # timm's adaptive kernels on 256/512/1024/2048 channels: 5, 5, 5, 7
        if k.endswith('eca.conv.weight'):
            stage = int(k[len('layer')])
            sd[k] = torch.randn(1, 1, (5, 5, 5, 7)[stage - 1])
    state, cfg, _, _ = timm.convert({'state_dict': timm_layout(sd, eca=True)})
    assert cfg == dict(type='ECAResNet', depth=50, kernel_size=(5, 5, 5, 7))
    assert_same_outputs(stage_outputs(cfg, state), reference(sd, 'eca', 50))


@pytest.mark.parametrize('patch,message', [
    (lambda sd: sd.update({'layer0.conv1.weight': sd.pop('conv1.weight')}), 'legacy_seresnet'),
    (lambda sd: sd.update({'last_linear.weight': sd.pop('fc.weight')}), 'legacy_seresnet'),
    (lambda sd: sd.update({'conv1.0.weight': sd.pop('conv1.weight')}), 'deep-stem'),
    (lambda sd: sd.update({'layer2.0.downsample.2.weight': torch.zeros(512)}), 'avg-pool downsample'),
    (lambda sd: sd.update({'layer1.0.conv2.weight': torch.zeros(64, 2, 3, 3)}), 'ResNeXt'),
], ids=['legacy-stem', 'legacy-head', 'deep-stem', 'avg-down', 'resnext'])
def test_timm_refuses_non_equivalent_architectures(patch, message):
    sd = timm_layout(official_state_dict('se', 50, se_bias=True))
    patch(sd)
    with pytest.raises(ConversionError, match=message):
        timm.convert(sd)


# ----------------------------------------------------------------------------- publish_model
def test_publish_model_plain_checkpoint_needs_no_trust(tmp_path, capsys):
    src = tmp_path / 'epoch_1.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': {'w': torch.ones(2)}, 'optimizer': {'state': {}}}, src)
    publish_model = load_tool('model_converters/publish_model.py')
    assert publish_model.main([str(src), str(tmp_path / 'm.pth'), '--save-keys', 'state_dict', '--date']) == 0
    final = capsys.readouterr().out.strip()
    assert re.fullmatch(re.escape(str(tmp_path / 'm')) + r'_\d{8}-[0-9a-f]{8}\.pth', final)
    assert set(torch.load(final, weights_only=True)) == {'state_dict'}


def test_publish_model(tmp_path, capsys):
    from mmengine.logging.history_buffer import HistoryBuffer
    sd = OrderedDict(('backbone.' + k, v) for k, v in list(official_state_dict('resnet', 18).items())[:6])
    buf = HistoryBuffer()
    buf.update(1.5)
    src = tmp_path / 'epoch_12.pth'
    torch.save({'meta': {'epoch': 12, 'hook_msgs': {'last_ckpt': 'x'}, 'dataset_meta': {'classes': ('a', )}},
                'state_dict': sd, 'optimizer': {'state': {}, 'param_groups': []},
                'message_hub': {'log_scalars': {'loss': buf}}}, src)
    out = tmp_path / 'faster-rcnn_eca-r50_fpn_1x_coco.pth'
    # (whether the message hub loads with weights_only=True depends on mmattn.utils' allow-list;
    # --trust-source makes this test independent of it)
    assert load_tool('model_converters/publish_model.py').main([str(src), str(out), '--trust-source']) == 0
    final = capsys.readouterr().out.strip()
    assert re.fullmatch(re.escape(str(out)[:-4]) + r'-[0-9a-f]{8}\.pth', final)
    assert not out.exists() and osp.isfile(final)
    with open(final, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest()[:8] == final[-12:-4]
    ckpt = torch.load(final, weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
    assert 'hook_msgs' not in ckpt['meta'] and ckpt['meta']['epoch'] == 12
    assert all(torch.equal(ckpt['state_dict'][k], v) for k, v in sd.items())


# ----------------------------------------------------------------------------- real timm models (optional)
def _randomize(state_dict, seed):
    """Random but well-scaled values for every tensor (timm zero-inits the last BN of each block)."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for k, v in state_dict.items():
        if not v.is_floating_point():
            out[k] = v
        elif k.endswith('running_var'):
            out[k] = torch.rand(v.shape, generator=g) + 0.5
        elif v.dim() >= 2:
            out[k] = torch.randn(v.shape, generator=g) * (2.0 / v[0].numel())**0.5
        else:
            out[k] = torch.randn(v.shape, generator=g) * 0.2 + (1.0 if k.endswith('.weight') else 0.0)
    return out


def _timm_stages(model, x):
    x = model.maxpool(model.act1(model.bn1(model.conv1(x))))
    outs = []
    for name in ('layer1', 'layer2', 'layer3', 'layer4'):
        x = getattr(model, name)(x)
        outs.append(x)
    return outs


@pytest.mark.parametrize('name,kwargs,expected_type', [
    ('seresnet50', {}, 'SEResNet'),
    ('seresnet18', {}, 'AttentionResNet'),
    ('resnet50', {}, 'ResNet'),
    ('resnet50', dict(block_args=dict(attn_layer='eca')), 'ECAResNet'),
])
def test_real_timm_models_convert_to_the_same_function(name, kwargs, expected_type):
    """With timm installed (optional, not in requirements): the converted backbone computes exactly
    what timm's model computes."""
    timm = pytest.importorskip('timm')
    model = timm.create_model(name, pretrained=False, **kwargs)
    model.load_state_dict(_randomize(model.state_dict(), 11))
    model.eval()
    state, cfg, _, dropped = timm.convert(model.state_dict())
    assert cfg['type'] == expected_type and sorted(dropped) == ['fc.bias', 'fc.weight']
    ours = build_backbone(cfg)
    ours.load_state_dict(state, strict=True)
    ours.double()
    model.double()
    with torch.no_grad():  # float64: equal up to rounding, whatever the accumulation order
        for i, (a, b) in enumerate(zip(ours(X.double()), _timm_stages(model, X.double()))):
            err = (a - b).abs().max().item() / max(b.abs().max().item(), 1.0)
            assert err < 1e-10, f'stage {i + 1}: relative error {err:.2e}'


@pytest.mark.parametrize('name,message', [('legacy_seresnet50', 'legacy_seresnet'), ('ecaresnet50d', 'deep-stem'),
                                          ('seresnext50_32x4d', 'ResNeXt'), ('ecaresnetlight', 'deep-stem|avg-pool')])
def test_real_timm_models_refused(name, message):
    timm = pytest.importorskip('timm')
    with pytest.raises(ConversionError, match=message):
        timm.convert(timm.create_model(name, pretrained=False).state_dict())
