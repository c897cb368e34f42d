"""tools/train.py and tools/test.py with segmentation configs: the checks that run before the runner
(missing mmseg, missing data, unknown types in the mmseg scope)."""
import json
import os.path as osp
import sys

import pytest

from mmattn.utils import ConfigCheckError, check_config, load_config
from mmattn.utils.config_check import check_seg_extra

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_SEG_CFG = osp.join(REPO_ROOT, 'configs', 'quickstart', 'fpn_sa-r50_toy-seg.py')


def _load(**options):
    return load_config(TOY_SEG_CFG, 'none', options or None, '/tmp/unused')


def test_segmentation_config_without_mmseg_names_the_extra(monkeypatch):
    # what mmengine raises for `_base_ = 'mmseg::...'` when mmsegmentation is not installed
    missing = ModuleNotFoundError('mmsegmentation is not installed, please install mmsegmentation manually')
    with pytest.raises(ConfigCheckError, match=r'mmseg::.*requirements/seg\.txt'):
        check_seg_extra(TOY_SEG_CFG, error=missing)
    check_seg_extra(TOY_SEG_CFG, error=ModuleNotFoundError('mmfoo'))  # not ours to explain: re-raised
    # a config in the mmseg scope whose bases are local, with mmseg not importable
    cfg = _load()
    monkeypatch.setitem(sys.modules, 'mmseg', None)
    with pytest.raises(ConfigCheckError, match=r"default_scope='mmseg'.*pip install -e \.\[seg\]"):
        check_seg_extra(TOY_SEG_CFG, cfg)


def test_missing_toy_segmentation_data_says_how_to_generate_it(tmp_path):
    root = str(tmp_path / 'toy_seg')
    cfg = _load(**{'train_dataloader.dataset.data_root': root})
    with pytest.raises(ConfigCheckError, match=r'img_dir/train .*does not exist.*make_toy_seg\.py --out'):
        check_config(cfg, mode='train')


def test_folder_without_label_maps_is_named(tmp_path):
    from mmattn.datasets import generate_toy_seg
    root = tmp_path / 'toy_seg'
    generate_toy_seg(str(root), num_train=2, num_val=2, size=32)
    cfg = _load(**{'train_dataloader.dataset.data_root': str(root),
                   'train_dataloader.dataset.seg_map_suffix': '_labelTrainIds.png'})
    with pytest.raises(ConfigCheckError, match=r"ann_dir/train .*seg_map_suffix='_labelTrainIds\.png'"):
        check_config(cfg, mode='train')


def test_unknown_backbone_in_mmseg_scope_is_named_with_suggestions():
    cfg = _load(**{'model.backbone.type': 'SAResNt'})
    with pytest.raises(ConfigCheckError, match=r"'SAResNt'.*mmseg\.registry\.MODELS.*'SAResNet'"):
        check_config(cfg, mode='test')


def test_get_flops_counts_the_segmentor_inference_network():
    """A segmentation config is counted at its training crop by default (mmseg's convention), through
    mmseg's _forward (backbone + decode head); its FLOPs grow with the pixels (the PSP pooling bins
    are the only fixed-size part)."""
    from mmattn.analysis.build import read_config, segmentation_shape
    from mmattn.analysis.complexity import complexity_of_config
    path = osp.join(REPO_ROOT, 'configs', 'segmentation', 'resnet',
                    'pspnet_r50b-d8_4xb2-80k_cityscapes-512x1024.py')
    assert segmentation_shape(read_config(path)) == (512, 1024)
    rec = complexity_of_config(path, (64, 128))
    assert (rec['shape'], rec['detector'], rec['num_classes']) == ([64, 128], 'PSPHead', 19)
    # all parameters (auxiliary head included), as mmseg's get_flops.py: 48.96 M
    assert rec['params'] == 48_956_262
    # 354.76 GFLOPs at the 512 x 1024 crop (docs: configs/segmentation/README.md), 64 times the pixels
    assert rec['flops']['mmdet'] * 64 == pytest.approx(354.758e9, rel=0.02)
    assert rec['flops']['full'] >= rec['flops']['mmdet']


def test_collect_results_reads_segmentation_runs_into_miou_columns_and_metafile_results(tmp_path):
    from mmengine.config import Config

    from mmattn.analysis.results import metafile_results, results_table
    from mmattn.analysis.work_dirs import collect
    seg_dir = osp.join(REPO_ROOT, 'configs', 'segmentation')
    runs = [('resnet', 'pspnet_r50b-d8_4xb2-80k_cityscapes-512x1024', 78.5),
            ('sa_resnet', 'pspnet_sa-r50-d8_4xb2-80k_cityscapes-512x1024', 79.25)]
    for family, name, miou in runs:
        work_dir = tmp_path / 'work_dirs' / name
        (work_dir / '20260101_000000').mkdir(parents=True)
        Config.fromfile(osp.join(seg_dir, family, name + '.py')).dump(str(work_dir / f'{name}.py'))
        # what tools/test.py writes for an mmseg config
        with open(work_dir / '20260101_000000' / '20260101_000000.json', 'w') as f:
            f.write(json.dumps(dict(aAcc=96.0, mIoU=miou, mAcc=85.5)) + '\n')
    results = collect([str(tmp_path / 'work_dirs')])
    assert [(r['task'], r['detector'], r['finished']) for r in results] == [('seg', 'PSPHead', True)] * 2
    table = results_table(results)
    assert '| mIoU | mAcc | aAcc |' in table
    sa_row = next(line for line in table.splitlines() if 'pspnet_sa-r50' in line)
    assert '| 79.25 | 85.50 | 96.00 | +0.8 |' in sa_row  # the delta to the R-50b baseline row
    assert metafile_results(results[1]) == [dict(Task='Semantic Segmentation', Dataset='Cityscapes',
                                                 Metrics={'mIoU': 79.25, 'mAcc': 85.5, 'aAcc': 96.0})]
