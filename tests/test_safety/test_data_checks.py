"""Bad annotations are named (with their ids) before training or testing starts."""
import json
import os.path as osp
import shutil
import sys

import pytest

from mmattn.utils import ConfigCheckError, check_data, load_config
from mmattn.utils.config_check import DataWarning

sys.path.append(osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_tools'))
import tools_helpers  # noqa: E402

toy_data = tools_helpers.toy_data
tiny_config = tools_helpers.tiny_config


@pytest.fixture
def data(toy_data, tmp_path):
    root = tmp_path / 'toy_coco'
    shutil.copytree(toy_data, root)
    return root


def _edit(root, split, edit):
    path = root / 'annotations' / f'instances_{split}.json'
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def _cfg(tiny_config, root, **options):
    return load_config(tiny_config, 'none', dict({
        'train_dataloader.dataset.data_root': f'{root}/',
        'val_dataloader.dataset.data_root': f'{root}/',
        'val_evaluator.ann_file': f'{root}/annotations/instances_val.json'}, **options))


def test_valid_toy_data_passes(tiny_config, data, recwarn):
    check_data(_cfg(tiny_config, data), ['train', 'val'])
    assert not [w for w in recwarn if issubclass(w.category, DataWarning)]


def test_some_invalid_boxes_warn_with_ids(tiny_config, data):
    def edit(content):
        anns = content['annotations']
        anns[0]['bbox'][2] = -5  # negative width
        anns[1]['bbox'][:2] = [500, 500]  # outside the 64 x 64 image
    _edit(data, 'train', edit)
    with pytest.warns(DataWarning) as record:
        check_data(_cfg(tiny_config, data), ['train'])
    msg = ' '.join(str(w.message) for w in record if w.category is DataWarning)
    assert '2 of 10 boxes are invalid and dropped' in msg
    assert 'width or height below 1 pixel (ids 1)' in msg
    assert 'outside the 64 x 64 image (ids 2)' in msg


def test_no_valid_box_is_an_error(tiny_config, data):
    _edit(data, 'train', lambda c: [a.update(bbox=[0, 0, 0, 0]) for a in c['annotations']])
    with pytest.raises(ConfigCheckError, match='10 of 10 boxes are invalid.*No valid instance is left'):
        check_data(_cfg(tiny_config, data), ['train'])


def test_empty_annotations_is_an_error(tiny_config, data):
    _edit(data, 'train', lambda c: c.update(annotations=[]))
    with pytest.raises(ConfigCheckError, match=r'has "annotations": \[\] \(4 images\): training has no'):
        check_data(_cfg(tiny_config, data), ['train'])


@pytest.mark.parametrize('segmentation, why', [([], 'empty'), ([[1, 2, 3, 4]], 'fewer than 3 points')])
def test_unusable_segmentation_is_named(tiny_config, data, segmentation, why):
    _edit(data, 'train', lambda c: c['annotations'][3].update(segmentation=segmentation))
    with pytest.raises(ConfigCheckError, match=f'1 annotations have no usable segmentation.*ids 4.*{why}'):
        check_data(_cfg(tiny_config, data), ['train'])


def test_evaluator_of_other_images_is_an_error(tiny_config, data):
    cfg = _cfg(tiny_config, data, **{'val_evaluator.ann_file': f'{data}/annotations/instances_train.json'})
    with pytest.raises(ConfigCheckError, match='val_evaluator.ann_file .* does not describe the images'):
        check_data(cfg, ['val'])
