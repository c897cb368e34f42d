import hashlib
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from mmattn.datasets.toy_coco import (CLASSES, META_FILE, ann_file_path,
                                      generate_toy_coco)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMALL = dict(num_train=6, num_val=3, size=64, seed=0)


def _digest(root):
    """Hash of every file under ``root`` (names and contents)."""
    sha = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = osp.join(dirpath, name)
            sha.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                sha.update(f.read())
    return sha.hexdigest()


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy') / 'toy_coco')
    generate_toy_coco(root, **SMALL)
    return root


def test_layout(toy_root):
    for split, num in (('train', SMALL['num_train']),
                       ('val', SMALL['num_val'])):
        assert osp.isfile(ann_file_path(toy_root, split))
        assert len(os.listdir(osp.join(toy_root, split))) == num
    assert osp.isfile(osp.join(toy_root, META_FILE))


@pytest.mark.parametrize('split', ['train', 'val'])
def test_valid_coco(toy_root, split):
    cv2 = pytest.importorskip('cv2')
    COCO = pytest.importorskip('pycocotools.coco').COCO
    coco = COCO(ann_file_path(toy_root, split))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == \
        list(CLASSES)
    assert len(coco.getImgIds()) == SMALL[f'num_{split}']
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= len(coco.getImgIds())  # at least one shape each
    ids = [ann['id'] for ann in anns]
    assert len(set(ids)) == len(ids)
    for img in coco.loadImgs(coco.getImgIds()):
        data = cv2.imread(osp.join(toy_root, split, img['file_name']))
        assert data.shape == (img['height'], img['width'], 3)
    for ann in anns:
        assert ann['iscrowd'] == 0
        assert ann['category_id'] in (1, 2, 3)
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0 and ann['area'] > 0
        img = coco.loadImgs(ann['image_id'])[0]
        assert x >= 0 and y >= 0
        assert x + w <= img['width'] and y + h <= img['height']
        # Polygon vertices and mask pixels lie inside the box.
        for poly in ann['segmentation']:
            pts = np.asarray(poly).reshape(-1, 2)
            assert len(pts) >= 3
            assert pts[:, 0].min() >= x and pts[:, 0].max() <= x + w
            assert pts[:, 1].min() >= y and pts[:, 1].max() <= y + h
        mask = coco.annToMask(ann)
        assert mask.shape == (img['height'], img['width'])
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0
        assert xs.min() >= x and xs.max() < x + w
        assert ys.min() >= y and ys.max() < y + h
        # The rasterized polygon covers most of the annotated area.
        assert 0.5 * ann['area'] <= mask.sum() <= 1.05 * ann['area']


def test_deterministic(toy_root, tmp_path):
    again = str(tmp_path / 'again')
    generate_toy_coco(again, **SMALL)
    assert _digest(again) == _digest(toy_root)
    other = str(tmp_path / 'other')
    generate_toy_coco(other, **dict(SMALL, seed=1))
    with open(ann_file_path(other, 'train')) as f1, \
            open(ann_file_path(toy_root, 'train')) as f2:
        assert json.load(f1) != json.load(f2)


def test_prefix_stable(toy_root, tmp_path):
    """More images extend a split without changing the first ones."""
    bigger = str(tmp_path / 'bigger')
    generate_toy_coco(bigger, **dict(SMALL, num_train=8))
    for name in sorted(os.listdir(osp.join(toy_root, 'train'))):
        with open(osp.join(toy_root, 'train', name), 'rb') as f1, \
                open(osp.join(bigger, 'train', name), 'rb') as f2:
            assert f1.read() == f2.read()


def test_idempotent(tmp_path):
    root = str(tmp_path / 'toy')
    assert generate_toy_coco(root, **SMALL)['generated']
    ann = ann_file_path(root, 'train')
    mtime = os.stat(ann).st_mtime_ns
    assert not generate_toy_coco(root, **SMALL)['generated']
    assert os.stat(ann).st_mtime_ns == mtime
    # --force, other arguments and missing files regenerate.
    assert generate_toy_coco(root, **SMALL, force=True)['generated']
    assert generate_toy_coco(root, **dict(SMALL, num_val=2))['generated']
    assert len(os.listdir(osp.join(root, 'val'))) == 2
    os.remove(osp.join(root, 'train', '000000.png'))
    assert generate_toy_coco(root, **dict(SMALL, num_val=2))['generated']
    assert osp.isfile(osp.join(root, 'train', '000000.png'))


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match='num_train'):
        generate_toy_coco(str(tmp_path), num_train=0)
    with pytest.raises(ValueError, match='size'):
        generate_toy_coco(str(tmp_path), size=8)


def test_cli(tmp_path):
    out = str(tmp_path / 'cli')
    cmd = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'misc', 'make_toy_coco.py'), '--out',
        out, '--num-train', '2', '--num-val', '1', '--size', '48', '--seed',
        '3'
    ]
    first = subprocess.run(
        cmd, capture_output=True, text=True, check=True, cwd=str(tmp_path))
    assert 'Wrote 2 images' in first.stdout
    second = subprocess.run(
        cmd, capture_output=True, text=True, check=True, cwd=str(tmp_path))
    assert 'up to date' in second.stdout
    forced = subprocess.run(
        cmd + ['--force'], capture_output=True, text=True, check=True)
    assert 'Wrote 2 images' in forced.stdout
