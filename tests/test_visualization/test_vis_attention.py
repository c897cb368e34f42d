"""The attention visualizer on tiny backbones: what it saves and draws is what each layer computes.

The reference is computed without the tool: the test normalises the image itself, runs the stem, and
for every block forms the attention layer's input from the block's own convs and norms, then calls the
layer's ``attention_maps`` on it.
"""
import os.path as osp
import runpy
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS

import mmattn.models  # noqa: F401  (registers the backbones)
from mmattn.models.backbones import EPSABottleneck
from mmattn.visualization import LoadedModel, attention_layers, visualize_attention
from mmattn.visualization.collect import select_layers
from mmattn.visualization.loading import IMAGENET_MEAN, IMAGENET_STD

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'visualization', 'vis_attention.py')
SIZE = 64

TINY = {
    'SAResNet': dict(groups=8),
    'CBAMResNet': dict(),
    'SGEResNet': dict(groups=8),
    'EPSANet': dict(conv_groups=(1, 2, 2, 4), psa_reduction=4),
    'ECAResNet': dict(),
}


def tiny_backbone(name, seed=0):
    """A depth-50 backbone with 16 base channels; every attention parameter drawn at random (at their
    paper init SA, SGE and CBAM's spatial gate are constant, which would hide a mix-up of blocks)."""
    torch.manual_seed(seed)
    backbone = MODELS.build(dict(type=name, depth=50, base_channels=16, **TINY[name]))
    for _, _, _, layer in attention_layers(backbone):
        for p in layer.parameters():
            p.data.uniform_(-1, 1)
    backbone.eval()  # mmdet's ResNet.train() returns None
    return backbone


@pytest.fixture(scope='module')
def image_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    cv2.circle(image, (20, 24), 12, (30, 200, 60), -1)
    cv2.rectangle(image, (36, 30), (58, 56), (220, 40, 40), -1)
    path = str(tmp_path_factory.mktemp('img') / 'shapes.png')
    cv2.imwrite(path, image)
    return path


def reference_maps(backbone, image_path, mean=IMAGENET_MEAN, std=IMAGENET_STD, bgr_to_rgb=True):
    """{layer name: attention_maps(input)} with the layer inputs rebuilt from the blocks' parts."""
    image = cv2.imread(image_path).astype(np.float32)
    image = image[..., ::-1] if bgr_to_rgb else image
    x = torch.from_numpy((image - np.array(mean)) / np.array(std)).permute(2, 0, 1)[None].float()
    out = {}
    with torch.no_grad():
        x = backbone.maxpool(backbone.relu(backbone.norm1(backbone.conv1(x))))
        for s, stage_name in enumerate(backbone.res_layers, 1):
            for b, block in enumerate(getattr(backbone, stage_name)):
                u = block.relu(block.norm1(block.conv1(x)))
                if isinstance(block, EPSABottleneck):
                    out[f'layer{s}.{b}.conv2'] = block.conv2.attention_maps(u)
                else:
                    u = block.norm3(block.conv3(block.relu(block.norm2(block.conv2(u)))))
                    name, = block.after_conv3_plugin_names
                    out[f'layer{s}.{b}.{name}'] = getattr(block, name).attention_maps(u)
                x = block(x)
    return out


@pytest.mark.parametrize('name', ['SAResNet', 'CBAMResNet', 'SGEResNet', 'EPSANet'])
def test_saved_and_drawn_gates_are_the_layers_own(name, image_path, tmp_path):
    backbone = tiny_backbone(name)
    expected = reference_maps(backbone, image_path)
    result, = visualize_attention([LoadedModel(name, backbone)], [image_path], str(tmp_path), size=SIZE)
    model = result.models[name]
    saved = np.load(osp.join(model.out_dir, 'gates.npz'))
    assert sorted(k.rsplit('/', 1)[0] for k in saved if not k.endswith('activation_mean')) == \
        sorted(f'{layer}' for layer, maps in expected.items() for _ in maps)
    for layer, maps in expected.items():
        for key, value in maps.items():
            np.testing.assert_allclose(saved[f'{layer}/{key}'], value[0].numpy(), rtol=1e-5, atol=1e-6)
    # the values drawn in the channel strips: each block's channel-type gates, in order
    for stage, rows in model.channel_drawn.items():
        for layer, values in rows.items():
            maps = expected[layer]
            want = torch.cat([maps[k][0].reshape(-1) for k in ('channel', 'scale') if k in maps]).numpy()
            np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-6)
    # gates differ between blocks (a mix-up of blocks would not pass the checks above)
    first, second = (expected[k] for k in list(expected)[:2])
    key = next(iter(first))
    assert not torch.allclose(first[key], second[key])

    # one overlay per stage at the image size; one per spatial block side by side (2 px apart)
    for stage in (1, 2, 3, 4):
        act = cv2.imread(osp.join(model.out_dir, f'stage{stage}_activation.png'))
        assert act.shape == (SIZE, SIZE, 3)
        spatial = [k for k in expected if k.startswith(f'layer{stage}.') and 'spatial' in expected[k]]
        path = osp.join(model.out_dir, f'stage{stage}_spatial.png')
        if spatial:
            assert cv2.imread(path).shape == (SIZE, len(spatial) * (SIZE + 2) - 2, 3)
        else:
            assert not osp.exists(path)
        assert osp.exists(osp.join(model.out_dir, f'stage{stage}_channel.png')) == (stage in model.channel_drawn)
    assert cv2.imread(osp.join(model.out_dir, 'overview.png')) is not None


def test_compare_has_a_row_per_model_with_their_gates(image_path, tmp_path):
    models = [LoadedModel(n, tiny_backbone(n)) for n in ('SGEResNet', 'SAResNet')]
    result, = visualize_attention(models, [image_path], str(tmp_path), size=SIZE, stages=[2, 3])
    compare = cv2.imread(result.compare)
    single = cv2.imread(osp.join(result.models['SGEResNet'].out_dir, 'overview.png'))
    assert compare.shape[1] == single.shape[1] and compare.shape[0] > 1.5 * single.shape[0]
    assert set(result.compare_drawn) == {'SGEResNet', 'SAResNet'}
    for label, model in zip(('SGEResNet', 'SAResNet'), models):
        expected = reference_maps(model.backbone, image_path)
        drawn = result.compare_drawn[label]
        assert sorted(drawn['spatial']) == [2, 3]
        for stage, (layer, smap) in drawn['spatial'].items():
            # the last block of the stage
            assert layer == max((k for k in expected if k.startswith(f'layer{stage}.')),
                                key=lambda k: int(k.split('.')[1]))
            torch.testing.assert_close(smap, expected[layer]['spatial'][0], rtol=1e-5, atol=1e-6)
        if label == 'SGEResNet':
            assert drawn['channel'] == {}
        else:
            for stage, rows in drawn['channel'].items():
                for layer, values in rows.items():
                    want = np.sort(expected[layer]['channel'][0].reshape(-1).numpy())[::-1]
                    np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-6)
        assert sorted(result.models[label].record.activations) == [2, 3]


def test_blocks_selection_and_its_errors():
    found = attention_layers(tiny_backbone('ECAResNet'))
    chosen = select_layers(found, blocks=['layer3.5', 'layer1.0'])
    assert [name for name, *_ in chosen] == ['layer1.0.eca', 'layer3.5.eca']
    with pytest.raises(ValueError, match=r"\['layer3.6'\] have no attention layer.*layer3.5"):
        select_layers(found, blocks=['layer3.6'])
    with pytest.raises(ValueError, match='write layerS.B'):
        select_layers(found, blocks=['3.1'])
    with pytest.raises(ValueError, match='stages 1..4'):
        select_layers(found, stages=[0, 5])


TINY_CONFIG = """
default_scope = 'mmdet'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)
model = dict(
    type='MaskRCNN',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[10.0, 20.0, 30.0], std=[50.0, 60.0, 70.0],
                           bgr_to_rgb=False),
    backbone=dict(type='SAResNet', depth=50, base_channels=16, groups=8, init_cfg=None))
"""


@pytest.fixture(scope='module')
def detector_files(tmp_path_factory):
    """A tiny SA config and a detector checkpoint of it (backbone.* plus another module's tensors)."""
    root = tmp_path_factory.mktemp('det')
    (root / 'tiny_sa.py').write_text(TINY_CONFIG)
    backbone = tiny_backbone('SAResNet', seed=1)
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['neck.conv.weight'] = torch.zeros(1)
    torch.save({'state_dict': state, 'meta': {}}, root / 'tiny_sa.pth')
    return str(root / 'tiny_sa.py'), str(root / 'tiny_sa.pth'), backbone


def test_cli_config_and_checkpoint(image_path, detector_files, tmp_path):
    config, checkpoint, trained = detector_files
    out = tmp_path / 'vis'
    proc = subprocess.run([sys.executable, TOOL, config, checkpoint, image_path, '--out-dir', str(out),
                           '--size', str(SIZE), '--blocks', 'layer2.1', 'layer3.0'],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f'tiny_sa: {checkpoint}' in proc.stdout
    model_dir = out / 'tiny_sa' / 'shapes'
    assert sorted(p.name for p in model_dir.iterdir()) == [
        'gates.npz', 'overview.png', 'stage2_activation.png', 'stage2_channel.png', 'stage2_spatial.png',
        'stage3_activation.png', 'stage3_channel.png', 'stage3_spatial.png', 'summary.json']
    # the checkpoint's weights and the config's normalisation (BGR, its own mean/std)
    expected = reference_maps(trained, image_path, mean=(10, 20, 30), std=(50, 60, 70), bgr_to_rgb=False)
    saved = np.load(model_dir / 'gates.npz')
    for layer in ('layer2.1.sa', 'layer3.0.sa'):
        for key in ('channel', 'spatial'):
            np.testing.assert_allclose(saved[f'{layer}/{key}'], expected[layer][key][0].numpy(), rtol=1e-5,
                                       atol=1e-6)
    assert cv2.imread(str(model_dir / 'stage3_spatial.png')).shape == (SIZE, SIZE, 3)


def test_wrong_inputs_fail_with_a_message(image_path, detector_files, tmp_path, capsys):
    from mmattn.utils.pretrained import PartialCheckpointError
    from mmattn.visualization import build_model
    config, checkpoint, _ = detector_files
    main = runpy.run_path(TOOL)['main']
    with pytest.raises(SystemExit) as exc:
        main([image_path, '--out-dir', str(tmp_path)])
    assert exc.value.code == 2 and 'is not a config (.py)' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['--backbone', 'SEResNet', image_path, '--compare', 'SAResNet', '--out-dir', str(tmp_path)])
    assert 'not both' in capsys.readouterr().err
    with pytest.raises(ValueError, match="'SAResnet' is not a registered ResNet-style backbone.*SAResNet"):
        build_model('SAResnet')
    # an SE-ResNet's weights do not fit the SA config: refused, not drawn half random
    se = MODELS.build(dict(type='SEResNet', depth=50, base_channels=16))
    torch.save({'state_dict': se.state_dict()}, tmp_path / 'se.pth')
    with pytest.raises(PartialCheckpointError, match='does not cover the model'):
        build_model(config, str(tmp_path / 'se.pth'))


def test_bare_backbone_default_widths_and_imagenet_checkpoint(tmp_path):
    from mmattn.visualization import build_model
    from mmattn.visualization.loading import RANDOM_WEIGHTS
    model = build_model('SEResNet', depth=18)
    assert (model.label, model.weights, model.mean, model.bgr_to_rgb) == \
        ('SEResNet-18', RANDOM_WEIGHTS, IMAGENET_MEAN, True)
    assert model.backbone.layer4[0].se.in_channels == 512 and not model.backbone.training
    # an ImageNet checkpoint (the classifier's fc.* is left over) loads every backbone tensor
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model.backbone.state_dict().items()}
    state['fc.weight'] = torch.zeros(1000, 512)
    torch.save(state, tmp_path / 'imagenet.pth')
    loaded = build_model('SEResNet', str(tmp_path / 'imagenet.pth'), depth=18)
    assert loaded.weights == str(tmp_path / 'imagenet.pth')
    for key, value in loaded.backbone.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_constant_gate_is_drawn_flat():
    """A gate that is constant up to rounding (SA and SGE at their init) must not be stretched into a
    pattern by the heat map's min-max normalisation."""
    from mmattn.visualization.figures import overlay
    image = np.full((16, 16, 3), 128, np.uint8)
    gate = torch.full((1, 4, 4), 0.7310586)
    gate[0, 1, 2] = 0.7310585
    drawn = overlay(gate, image)
    assert (drawn == drawn[0, 0]).all()
    gate[0, 1, 2] = 0.5
    drawn = overlay(gate, image)
    assert not (drawn == drawn[0, 0]).all()


SEG_CONFIG = """
default_scope = 'mmseg'
custom_imports = dict(imports=['mmattn.models'], allow_failed_imports=False)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[100.0, 110.0, 120.0], std=[40.0, 50.0, 60.0],
                           bgr_to_rgb=True),
    backbone=dict(type='SGEResNet', depth=50, base_channels=16, groups=8, strides=(1, 2, 1, 1),
                  dilations=(1, 1, 2, 4), contract_dilation=True, norm_cfg=dict(type='SyncBN')))
"""


def test_segmentation_config(image_path, tmp_path):
    """An mmseg config: its backbone is built in mmseg's scope (dilated, SyncBN) and read the same way."""
    pytest.importorskip('mmseg')
    from mmattn.visualization import build_model
    config = tmp_path / 'tiny_seg.py'
    config.write_text(SEG_CONFIG)
    model = build_model(str(config), seed=2)
    assert model.mean == (100.0, 110.0, 120.0) and model.bgr_to_rgb
    for _, _, _, layer in attention_layers(model.backbone):
        for p in layer.parameters():
            p.data.uniform_(-1, 1)
    result, = visualize_attention([model], [image_path], str(tmp_path / 'out'), size=SIZE, stages=[3, 4])
    record = result.models['tiny_seg'].record
    # output stride 8: stages 3 and 4 keep stage 2's resolution
    assert [tuple(record.activations[s].shape[-2:]) for s in (3, 4)] == [(SIZE // 8, SIZE // 8)] * 2
    expected = reference_maps(model.backbone, image_path, mean=model.mean, std=model.std)
    assert [layer.name for layer in record.layers] == [k for k in expected if k.startswith(('layer3', 'layer4'))]
    for layer in record.layers:
        torch.testing.assert_close(layer.maps['spatial'], expected[layer.name]['spatial'], rtol=1e-5, atol=1e-6)
