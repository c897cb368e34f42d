"""get_flops.py: exact parameter/FLOP counts, attention operators counted (never skipped), detectors
built from configs without any data or checkpoint on disk."""
import json
import os.path as osp

import pytest
import torch
from torch import nn

import get_flops as gf

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(ROOT, 'configs')
# (channels, spatial side at a 64 x 64 input, blocks) of the four ResNet-50 stages
R50_STAGES = [(256, 16, 3), (512, 8, 4), (1024, 4, 6), (2048, 2, 3)]


@pytest.fixture(scope='module')
def r50_64():
    return gf.complexity_of_backbone('ResNet-50', (64, 64))


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
    rec = gf.complexity_of_backbone('ResNet-50', (224, 224), with_head=True)
    assert rec['params'] == 25_557_032 == rec['trainable_params']
    assert rec['by_op']['conv'] + rec['by_op']['linear'] == 4_089_184_256  # conv + fc MACs
    assert rec['uncounted'] == {}
    # 'mmdet' is exactly mmengine's FlopAnalyzer with its default handles (= mmdet 3.x get_flops)
    from mmengine.analysis import FlopAnalyzer
    backbone, _, _ = gf.build_backbone('ResNet-50')
    model = gf.ClassifierWrapper(backbone, with_head=True)
    model.eval()
    x = torch.randn(1, 3, 224, 224)
    analyzer = FlopAnalyzer(model, (x, ))
    analyzer.unsupported_ops_warnings(False)
    assert rec['flops']['mmdet'] == analyzer.total()
    # 'mmcv1' equals an independent module-hook count, and the PytorchInsight/SGE README's 4.122 G
    assert rec['flops']['mmcv1'] == mmcv1_hook_count(model, x)
    assert round(rec['flops']['mmcv1'] / 1e9, 3) == 4.122
    # 'full' adds what the others skip: residual adds (16 blocks) and max-pool windows
    assert rec['by_op']['ew:add'] == sum(c * (56 * 56 // 4**i) * n for i, (c, _, n) in enumerate(R50_STAGES))
    assert rec['flops']['full'] > rec['flops']['mmcv1'] > rec['flops']['mmdet']


def _sum_blocks(fn):
    return sum(n * fn(c, s * s) for c, s, n in R50_STAGES)


def test_se_operators_are_all_counted(r50_64):
    se = gf.complexity_of_backbone('SEResNet-50', (64, 64))
    # per block: GAP (C*HW), fc1 C*r + bias r, ReLU r, fc2 r*C + bias C, sigmoid C, gate product C*HW
    full = _sum_blocks(lambda c, hw: c * hw + c * (c // 16) + c // 16 + c // 16 + (c // 16) * c + c + c + c * hw)
    assert se['flops']['full'] - r50_64['flops']['full'] == full
    assert se['flops']['mmdet'] - r50_64['flops']['mmdet'] == _sum_blocks(lambda c, hw: 2 * c * (c // 16))
    # mmcv1: GAP (as nn.AdaptiveAvgPool2d), both FC MACs, the conv bias-free FC bias not counted, nn.ReLU
    assert se['flops']['mmcv1'] - r50_64['flops']['mmcv1'] == \
        _sum_blocks(lambda c, hw: c * hw + 2 * c * (c // 16) + c // 16)
    assert se['by_op']['ew:sigmoid'] == _sum_blocks(lambda c, hw: c)


def test_eca_operators_are_all_counted(r50_64):
    eca = gf.complexity_of_backbone('ECAResNet-50', (64, 64))
    ks = dict(zip((256, 512, 1024, 2048), (3, 5, 5, 7)))  # released k3557
    # per block: GAP, 1-D conv C*k MACs, sigmoid C, gate product C*HW
    assert eca['flops']['full'] - r50_64['flops']['full'] == _sum_blocks(lambda c, hw: 2 * c * hw + c * ks[c] + c)
    assert eca['flops']['mmdet'] - r50_64['flops']['mmdet'] == _sum_blocks(lambda c, hw: c * ks[c])
    assert eca['params'] - r50_64['params'] == 80


# (any of these categories) per requirement: pooling, normalisation statistics, the sigmoid gate
@pytest.mark.parametrize('spec,expected_ops', [
    ('SAResNet-50', (('reduce:gap', ), ('norm', 'reduce:var', 'reduce:var_mean'), ('ew:sigmoid', ))),
    ('CBAMResNet-50', (('reduce:gap', ), ('reduce:gmp', ), ('reduce:amax', ), ('reduce:mean', ), ('ew:sigmoid', ))),
    # (SGE's inference gate takes the std as the norm of the score centred in place)
    ('SGEResNet-50', (('reduce:gap', 'reduce:mean'), ('reduce:std', 'reduce:std_mean', 'reduce:var_mean',
                                                      'reduce:linalg_vector_norm'), ('ew:sigmoid', ))),
    ('EPSANet-50', (('softmax', ), ('reduce:gap', ), ('ew:sigmoid', ), ('conv_bias', ))),
])
def test_other_attention_operators_are_counted(r50_64, spec, expected_ops):
    rec = gf.complexity_of_backbone(spec, (64, 64))  # raises if any operator had no rule
    assert rec['uncounted'] == {}
    for any_of in expected_ops:
        assert any(rec['by_op'].get(op, 0) > 0 for op in any_of), any_of
    # the gates touch every element of the block outputs: at least C*H*W per block beyond ResNet
    if spec != 'EPSANet-50':
        assert rec['flops']['full'] - r50_64['flops']['full'] >= _sum_blocks(lambda c, hw: c * hw)
    assert rec['flops']['full'] > rec['flops']['mmdet']


def test_cbam_lp_and_lse_pools_are_counted():
    from mmattn.layers import CBAM
    layer = CBAM(64, pool_types=('avg', 'max', 'lp', 'lse'))
    layer.eval()
    rec = gf.analyze(layer, (torch.randn(2, 64, 8, 8), ))
    n = 2 * 64 * 8 * 8
    assert rec['by_op']['reduce:logsumexp'] == 3 * n  # exp, accumulate, (log) per input element
    assert rec['by_op']['reduce:sum'] >= n and rec['by_op']['ew:pow'] == n  # L2 pool: square, sum
    assert rec['by_op']['reduce:gap'] == n and rec['by_op']['reduce:gmp'] == n
    assert rec['uncounted'] == {}


class _Cumprod(nn.Module):

    def forward(self, x):
        return torch.cumprod(x, dim=1)


def test_unknown_operators_fail_loudly():
    x = (torch.rand(1, 8), )
    with pytest.raises(gf.UnsupportedOpsError, match='aten::cumprod'):
        gf.analyze(_Cumprod(), x)
    rec = gf.analyze(_Cumprod(), x, allow_unsupported=True)
    assert rec['uncounted'] == {'aten::cumprod': 1}


def test_fixed_proposals_cover_every_roi_level():
    boxes = gf.fixed_proposals(1000, 800, 1280)
    assert boxes.shape == (1000, 4)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= 1280).all() and (boxes[:, 3] <= 800).all()
    assert ((boxes[:, 2] - boxes[:, 0]) >= 2).all()
    torch.testing.assert_close(boxes, gf.fixed_proposals(1000, 800, 1280))  # deterministic
    for subset in (boxes, boxes[:100]):  # the mask head sees the first 100
        scale = ((subset[:, 2] - subset[:, 0]) * (subset[:, 3] - subset[:, 1])).sqrt()
        levels = torch.floor(torch.log2(scale / 56 + 1e-6)).clamp(0, 3)
        assert set(levels.long().tolist()) == {0, 1, 2, 3}


def test_detectors_from_configs_without_data():
    """Configs build with init_cfg off (no checkpoint, no COCO) and trace on a small image."""
    faster = gf.complexity_of_config(osp.join(CFG, 'se_resnet/faster-rcnn_se-r50_fpn_1x_coco.py'), (128, 160), 32)
    assert faster['detector'] == 'FasterRCNN' and faster['backbone'] == 'SEResNet' and faster['depth'] == 50
    assert faster['uncounted'] == {} and faster['proposals'] == 32
    # frozen stem + layer1 (frozen_stages=1) with its 3 SE modules: the papers' counter leaves them out
    assert faster['params'] - faster['trainable_params'] == 225_344 + 3 * (2 * 256 * 16 + 16 + 256)
    assert faster['by_op']['roi_align'] == 32 * 256 * 7 * 7
    assert faster['by_op']['linear'] >= 32 * (256 * 7 * 7 * 1024 + 1024 * 1024)
    retina = gf.complexity_of_config(osp.join(CFG, 'eca_resnet/retinanet_eca-r50_fpn_1x_coco.py'), (128, 160))
    assert retina['detector'] == 'RetinaNet' and retina['proposals'] is None and 'roi_align' not in retina['by_op']
    mask = gf.complexity_of_config(osp.join(CFG, 'resnet/mask-rcnn_r50_fpn_1x_coco.py'), (128, 160), 32)
    # mask head: 4 convs 3x3 256->256 on 14x14 for min(100, proposals) RoIs + 2x2 deconv
    assert mask['by_op']['conv_transposed'] == 32 * 14 * 14 * 256 * 256 * 4
    assert mask['by_op']['roi_align'] == 32 * 256 * (7 * 7 + 14 * 14)


def test_faster_rcnn_r50_reproduces_eca_table5():
    """mmcv1 convention at the papers' input: ECA-Net Table 5's 207.07 GFLOPs and 41.53 M."""
    rec = gf.complexity_of_config(osp.join(CFG, 'resnet/faster-rcnn_r50_fpn_1x_coco.py'), (1280, 800))
    assert round(rec['flops']['mmcv1'] / 1e9, 2) == 207.07
    # ours has 80 x 4 box outputs, mmdet v1's 81 x 4: 4,100 fewer parameters, same rounding
    assert round((rec['trainable_params'] + 4100) / 1e6, 2) == 41.53


def test_cli_tables_and_json(tmp_path, capsys):
    out_json, out_md = tmp_path / 'c.json', tmp_path / 'c.md'
    rc = gf.main([osp.join(CFG, 'resnet/faster-rcnn_r50_fpn_1x_coco.py'),
                  osp.join(CFG, 'eca_resnet/faster-rcnn_eca-r50_*.py'), '--shape', '96', '128', '--proposals', '8',
                  '--backbones', 'ECAResNet-50', '--with-head', '--json', str(out_json), '--out',
                  str(out_md)])
    assert rc == 0
    text = capsys.readouterr().out
    assert text.strip() == out_md.read_text().strip()
    data = json.loads(out_json.read_text())
    assert [r['name'] for r in data['detectors']] == ['faster-rcnn_r50_fpn_1x_coco', 'faster-rcnn_eca-r50_fpn_1x_coco']
    assert [r['params'] for r in data['backbones']] == [25_557_112]
    rows = {line.split(' | ')[0].strip('| '): line for line in text.splitlines() if line.startswith('| faster')}
    assert '41.53 / 207.07' in rows['faster-rcnn_r50_fpn_1x_coco']  # papers' numbers beside ours
    assert '+0.00 / +0.11' in rows['faster-rcnn_eca-r50_fpn_1x_coco']  # paper delta vs ResNet
    assert '24.37M / 3.86G (2^20/2^30, ECA T3)' in text
    assert 'Notes' in text


def test_collect_configs_walks_folders_and_skips_base(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / '_base_').mkdir()
    for p in ('a/x.py', 'a/y.txt', '_base_/b.py', 'z.py'):
        (tmp_path / p).write_text('')
    assert gf.collect_configs([str(tmp_path)]) == [str(tmp_path / 'a/x.py'), str(tmp_path / 'z.py')]
    with pytest.raises(FileNotFoundError):
        gf.collect_configs([str(tmp_path / 'missing.py')])
