"""Complexity counting: exact counts, attention operators counted (never skipped), detectors built
from configs without any data or checkpoint, and the papers' counting reproduced."""
import json
import os.path as osp

import pytest
import torch
from tools_helpers import load_tool
from torch import nn

from mmattn.analysis import ClassifierWrapper, build_backbone, collect_configs
from mmattn.analysis import paper_conventions as pc
from mmattn.analysis.build import fixed_proposals
from mmattn.analysis.complexity import UnsupportedOpsError, analyze, complexity_of_backbone, complexity_of_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(ROOT, 'configs')
# (channels, spatial side at a 64 x 64 input, blocks) of the four ResNet-50 stages
R50_STAGES = [(256, 16, 3), (512, 8, 4), (1024, 4, 6), (2048, 2, 3)]


@pytest.fixture(scope='module')
def r50_64():
    return complexity_of_backbone('ResNet-50', (64, 64))


def _sum_blocks(fn):
    return sum(n * fn(c, s * s) for c, s, n in R50_STAGES)


def mmcv1_hook_count(model, x):
    """Independent module-hook counter with mmcv 1.x's rules (conv MACs + bias, Linear MACs, BN/GN x2,
    ReLU, pooling = input elements)."""
    total = [0]

    def hook(m, inputs, out):
        inp = inputs[0]
        if isinstance(m, nn.Conv2d):
            total[0] += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            total[0] += out.numel() if m.bias is not None else 0
        elif isinstance(m, nn.Linear):
            total[0] += inp.numel() * m.out_features
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            total[0] += inp.numel() * (2 if m.affine else 1)
        elif isinstance(m, (nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
            total[0] += inp.numel() if not isinstance(m, nn.ReLU) else out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0]


def test_resnet50_imagenet_counts():
    rec = complexity_of_backbone('ResNet-50', (224, 224), with_head=True)
    assert rec['params'] == 25_557_032 == rec['trainable_params']
    assert rec['by_op']['conv'] + rec['by_op']['linear'] == 4_089_184_256  # conv + fc MACs
    # 'mmdet' is exactly mmengine's FlopAnalyzer with its default handles (= mmdet 3.x get_flops)
    from mmengine.analysis import FlopAnalyzer
    model = ClassifierWrapper(build_backbone('ResNet-50')[0], with_head=True).eval()
    x = torch.randn(1, 3, 224, 224)
    analyzer = FlopAnalyzer(model, (x, ))
    analyzer.unsupported_ops_warnings(False)
    assert rec['flops']['mmdet'] == analyzer.total()
    # 'full' adds what mmengine skips: the 16 residual adds and the stem's 3x3 max-pool windows
    adds = sum(c * (56 * 56 // 4**i) * n for i, (c, _, n) in enumerate(R50_STAGES))
    assert rec['flops']['full'] - rec['flops']['mmdet'] == adds + 64 * 56 * 56 * 9
    # the papers' counter: an independent module-hook count, and the PytorchInsight README's 4.122 G
    paper = pc.backbone_record('ResNet-50')
    assert paper['mmcv1'] == mmcv1_hook_count(model, x)
    assert round(paper['mmcv1'] / 1e9, 3) == 4.122


def test_se_and_eca_operators_are_all_counted(r50_64):
    se = complexity_of_backbone('SEResNet-50', (64, 64))
    # per block: GAP C*HW, fc1 and fc2 MACs, sigmoid C, gate product C*HW (ReLU: ignored by mmengine)
    assert se['flops']['full'] - r50_64['flops']['full'] == \
        _sum_blocks(lambda c, hw: c * hw + 2 * c * (c // 16) + c + c * hw)
    assert se['flops']['mmdet'] - r50_64['flops']['mmdet'] == _sum_blocks(lambda c, hw: 2 * c * (c // 16))
    eca = complexity_of_backbone('ECAResNet-50', (64, 64))
    ks = dict(zip((256, 512, 1024, 2048), (3, 5, 5, 7)))  # released k3557
    assert eca['flops']['full'] - r50_64['flops']['full'] == _sum_blocks(lambda c, hw: 2 * c * hw + c * ks[c] + c)
    assert eca['flops']['mmdet'] - r50_64['flops']['mmdet'] == _sum_blocks(lambda c, hw: c * ks[c])
    assert eca['params'] - r50_64['params'] == 80


@pytest.mark.parametrize('spec,expected_ops', [
    ('SAResNet-50', ('mean', 'group_norm', 'sigmoid')),
    ('CBAMResNet-50', ('mean', 'amax', 'sigmoid')),
    ('SGEResNet-50', ('mean', 'std', 'sigmoid')),
    ('EPSANet-50', ('softmax', 'mean', 'sigmoid')),
])
def test_other_attention_operators_are_counted(r50_64, spec, expected_ops):
    rec = complexity_of_backbone(spec, (64, 64))  # raises if any operator had no rule
    for op in expected_ops:
        assert rec['by_op'].get(op, 0) > 0, op
    if spec != 'EPSANet-50':  # the gates touch every element of the block outputs
        assert rec['flops']['full'] - r50_64['flops']['full'] >= _sum_blocks(lambda c, hw: c * hw)
    assert rec['flops']['full'] > rec['flops']['mmdet']


def test_cbam_lp_and_lse_pools_are_counted():
    from mmattn.layers import CBAM
    rec = analyze(CBAM(64, pool_types=('avg', 'max', 'lp', 'lse')).eval(), (torch.randn(2, 64, 8, 8), ))
    assert rec['by_op']['logsumexp'] == 3 * 2 * 64 * 8 * 8


class _Cumprod(nn.Module):

    def forward(self, x):
        return torch.cumprod(x, dim=1)


def test_unknown_operators_fail_loudly():
    x = (torch.rand(1, 8), )
    with pytest.raises(UnsupportedOpsError, match='aten::cumprod'):
        analyze(_Cumprod(), x)
    assert analyze(_Cumprod(), x, allow_unsupported=True)['uncounted'] == {'aten::cumprod': 1}


def test_fixed_proposals_cover_every_roi_level():
    boxes = fixed_proposals(1000, 800, 1280)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 1280).all() and (boxes[:, 3] <= 800).all()
    assert ((boxes[:, 2] - boxes[:, 0]) >= 2).all()
    torch.testing.assert_close(boxes, fixed_proposals(1000, 800, 1280))  # deterministic
    for subset in (boxes, boxes[:100]):  # the mask head sees the first 100
        scale = ((subset[:, 2] - subset[:, 0]) * (subset[:, 3] - subset[:, 1])).sqrt()
        levels = torch.floor(torch.log2(scale / 56 + 1e-6)).clamp(0, 3)
        assert set(levels.long().tolist()) == {0, 1, 2, 3}


def test_detectors_from_configs_without_data():
    """Configs build with init_cfg off (no checkpoint, no COCO) and trace on a small image."""
    faster = complexity_of_config(osp.join(CFG, 'se_resnet/faster-rcnn_se-r50_fpn_1x_coco.py'), (128, 160), 32)
    assert (faster['detector'], faster['backbone'], faster['depth'], faster['proposals']) == \
        ('FasterRCNN', 'SEResNet', 50, 32)
    # frozen stem + layer1 (frozen_stages=1) with its 3 SE modules: the papers' counter leaves them out
    assert faster['params'] - faster['trainable_params'] == 225_344 + 3 * (2 * 256 * 16 + 16 + 256)
    assert faster['by_op']['PythonOp.RoIAlignFunction'] == 4 * 32 * 256 * 7 * 7
    retina = complexity_of_config(osp.join(CFG, 'eca_resnet/retinanet_eca-r50_fpn_1x_coco.py'), (128, 160))
    assert retina['detector'] == 'RetinaNet' and retina['proposals'] is None


def test_faster_rcnn_r50_reproduces_eca_table5():
    """The papers' counting at their input gives ECA-Net Table 5's row exactly (41.53 M / 207.07 G)."""
    rec = pc.detector_record(osp.join(CFG, 'resnet/faster-rcnn_r50_fpn_1x_coco.py'))
    assert round(rec['mmcv1'] / 1e9, 2) == 207.07
    table = pc.reconciliation_table([rec])
    assert '| 41.53 | 41.53 |' in table and '| 207.07 | 207.07 | yes |' in table


def test_cli_table_and_json(tmp_path, capsys):
    out_json = tmp_path / 'c.json'
    rc = load_tool('analysis_tools/get_flops.py').main(
        [osp.join(CFG, 'eca_resnet/faster-rcnn_eca-r50_*.py'), '--shape', '96', '128', '--proposals', '8',
         '--backbones', 'ECAResNet-50', '--with-head', '--json', str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    data = json.loads(out_json.read_text())
    assert [r['name'] for r in data] == ['ECAResNet-50', 'faster-rcnn_eca-r50_fpn_1x_coco']
    assert data[0]['params'] == 25_557_112
    assert '| ECAResNet-50 | 224x224 | 25.56 |' in text


def test_collect_configs_walks_folders_and_skips_base(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / '_base_').mkdir()
    for p in ('a/x.py', 'a/y.txt', '_base_/b.py', 'z.py'):
        (tmp_path / p).write_text('')
    assert collect_configs([str(tmp_path)]) == [str(tmp_path / 'a/x.py'), str(tmp_path / 'z.py')]
    with pytest.raises(FileNotFoundError):
        collect_configs([str(tmp_path / 'missing.py')])
