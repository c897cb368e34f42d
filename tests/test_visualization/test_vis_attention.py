"""The attention visualizer on tiny backbones: what it saves and draws is what each layer computes.

The reference is computed without the tool: the test normalises the image itself, runs the stem, and
for every block forms the attention layer's input from the block's own convs and norms, then calls the
layer's ``attention_maps`` on it.
"""
import os.path as osp
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


def reference_maps(backbone, image_path):
    """{layer name: attention_maps(input)} with the layer inputs rebuilt from the blocks' parts."""
    rgb = cv2.imread(image_path)[..., ::-1].astype(np.float32)
    x = torch.from_numpy((rgb - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).permute(2, 0, 1)[None].float()
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


def test_cli_bare_backbone(image_path, tmp_path):
    tool = osp.join(ROOT, 'tools', 'visualization', 'vis_attention.py')
    out = tmp_path / 'vis'
    proc = subprocess.run([sys.executable, tool, '--backbone', 'SEResNet', '--depth', '18', image_path,
                           '--out-dir', str(out), '--size', '48', '--blocks', 'layer2.1'],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'random weights' in proc.stdout
    files = sorted(p.name for p in (out / 'SEResNet-18' / 'shapes').iterdir())
    assert files == ['gates.npz', 'overview.png', 'stage2_activation.png', 'stage2_channel.png', 'summary.json']
    assert list(np.load(out / 'SEResNet-18' / 'shapes' / 'gates.npz')) == ['layer2/activation_mean',
                                                                            'layer2.1.se/channel']
    assert cv2.imread(str(out / 'SEResNet-18' / 'shapes' / 'stage2_activation.png')).shape == (48, 48, 3)
    # a wrong first argument fails with the usage, not a traceback
    proc = subprocess.run([sys.executable, tool, image_path, '--out-dir', str(out)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and 'is not a config (.py)' in proc.stderr
