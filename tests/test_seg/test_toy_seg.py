"""mmattn.datasets.toy_seg: the toy COCO scenes as label maps in mmseg's layout (no mmseg needed)."""
import json
import os

import cv2
import numpy as np
import pytest

from mmattn.datasets import toy_coco, toy_seg

ARGS = dict(num_train=4, num_val=3, size=64, seed=3, max_objects=4)


@pytest.fixture(scope='module')
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy')
    seg = toy_seg.generate_toy_seg(str(root / 'seg'), **ARGS)
    coco = toy_coco.generate_toy_coco(str(root / 'coco'), **ARGS)
    return root, seg, coco


def test_same_scenes_and_label_maps_match_the_coco_annotations(both):
    root, seg, coco = both
    assert seg['generated']
    for split in toy_seg.SPLITS:
        img_dir, ann_dir = seg[split]
        with open(coco[split]) as f:
            data = json.load(f)
        for image in data['images']:
            name = image['file_name']
            seg_img = cv2.imread(os.path.join(img_dir, name))
            coco_img = cv2.imread(str(root / 'coco' / split / name))
            np.testing.assert_array_equal(seg_img, coco_img)
            labels = cv2.imread(os.path.join(ann_dir, name), cv2.IMREAD_UNCHANGED)
            assert labels.dtype == np.uint8 and labels.shape == (64, 64)
            # per class, the labelled pixels are the visible areas COCO records for its instances
            areas = np.zeros(len(toy_seg.CLASSES))
            for ann in data['annotations']:
                if ann['image_id'] == image['id']:
                    areas[ann['category_id']] += ann['area']
            counts = np.bincount(labels.ravel(), minlength=len(toy_seg.CLASSES))
            np.testing.assert_array_equal(counts[1:], areas[1:])
            assert counts.sum() == 64 * 64


def test_reused_when_consistent_and_regenerated_when_not(both, tmp_path):
    root, _, _ = both
    again = toy_seg.generate_toy_seg(str(root / 'seg'), **ARGS)
    assert not again['generated']
    # a lost label map, or other arguments, make it regenerate
    os.remove(os.path.join(again['val'][1], '000001.png'))
    assert toy_seg.generate_toy_seg(str(root / 'seg'), **ARGS)['generated']
    assert toy_seg.generate_toy_seg(str(root / 'seg'), **dict(ARGS, seed=4))['generated']
    assert len(os.listdir(again['train'][0])) == ARGS['num_train']


@pytest.mark.parametrize('kwargs,message', [
    (dict(num_train=0), 'num_train and num_val must be >= 1'),
    (dict(size=16), 'size must be >= 32'),
    (dict(max_objects=0), 'max_objects must be >= 1'),
])
def test_bad_arguments_say_what_is_valid(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        toy_seg.generate_toy_seg(str(tmp_path), **dict(ARGS, **kwargs))
