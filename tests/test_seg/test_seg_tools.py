"""tools/train.py and tools/test.py with segmentation configs: the checks that run before the runner
(missing mmseg, missing data, unknown types in the mmseg scope)."""
import os.path as osp
import sys

import pytest

from mmattn.utils import ConfigCheckError, check_config, load_config
from mmattn.utils.config_check import check_seg_extra

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_SEG_CFG = osp.join(REPO_ROOT, 'configs', 'quickstart', 'pspnet_sa-r50-d8_toy-seg.py')


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
