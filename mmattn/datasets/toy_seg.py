"""A small synthetic semantic-segmentation dataset in MMSegmentation's layout.

The scenes are those of :mod:`mmattn.datasets.toy_coco` (circles, rectangles
and triangles on a textured, noisy background; same arguments, same images),
annotated as label maps instead of instance polygons: every pixel holds the
class of the shape visible there, 0 for the background. The layout is the one
mmseg's own ``BaseSegDataset`` reads (images and label maps with the same
stem in parallel folders)::

    <root>/img_dir/train/000000.png ...   # uint8 BGR images
    <root>/ann_dir/train/000000.png ...   # uint8 label maps, values 0-3
    <root>/img_dir/val/...
    <root>/ann_dir/val/...
    <root>/toy_seg_meta.json              # the arguments used, for idempotency

so a config needs no dataset class of its own::

    dict(type='BaseSegDataset', data_root='data/toy_seg', img_suffix='.png',
         seg_map_suffix='.png', metainfo=dict(classes=CLASSES, palette=PALETTE),
         data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'))

Use :func:`generate_toy_seg` from Python or ``tools/misc/make_toy_seg.py`` from
the command line. Needs numpy and OpenCV only.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict

import cv2
import numpy as np

from . import toy_coco

# Bump when the label maps change for the same arguments (the images follow
# toy_coco.GENERATOR_VERSION, which is part of the metadata too).
GENERATOR_VERSION = 1

#: Label 0 is the background, labels 1-3 are toy_coco's categories in order.
CLASSES = ('background', ) + toy_coco.CLASSES
PALETTE = ((0, 0, 0), (220, 20, 60), (0, 128, 255), (0, 200, 80))
SPLITS = toy_coco.SPLITS
META_FILE = 'toy_seg_meta.json'
IMG_DIR = 'img_dir'
ANN_DIR = 'ann_dir'


def label_map(shapes, size: int) -> np.ndarray:
    """The (size, size) uint8 label map of ``toy_coco.render_scene`` shapes."""
    labels = np.zeros((size, size), np.uint8)
    for shape in shapes:
        # Visible masks are disjoint, so the order of assignment is free.
        labels[shape['mask']] = shape['category']
    return labels


def make_split(root: str, split: str, num_images: int, size: int, seed: int,
               max_objects: int) -> np.ndarray:
    """Write one split; return its pixel count per class (len(CLASSES),)."""
    img_dir = osp.join(root, IMG_DIR, split)
    ann_dir = osp.join(root, ANN_DIR, split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    counts = np.zeros(len(CLASSES), np.int64)
    # toy_coco's per-image seeds: image i of a split is the same scene in
    # both datasets.
    seeds = toy_coco._split_seed(seed, split).spawn(num_images)
    for idx, child_seed in enumerate(seeds):
        rng = np.random.default_rng(child_seed)
        img, shapes = toy_coco.render_scene(rng, size, max_objects)
        labels = label_map(shapes, size)
        counts += np.bincount(labels.ravel(), minlength=len(CLASSES))
        name = f'{idx:06d}.png'
        for path, array in ((osp.join(img_dir, name), img),
                            (osp.join(ann_dir, name), labels)):
            if not cv2.imwrite(path, array):
                raise OSError(f'Could not write {path}')
    return counts


def _expected_meta(num_train: int, num_val: int, size: int, seed: int,
                   max_objects: int) -> dict:
    return dict(
        generator_version=GENERATOR_VERSION,
        scene_generator_version=toy_coco.GENERATOR_VERSION,
        num_train=num_train,
        num_val=num_val,
        size=size,
        seed=seed,
        max_objects=max_objects,
        classes=list(CLASSES))


def is_consistent(root: str, meta: dict) -> bool:
    """Whether ``root`` holds a complete dataset generated with ``meta``."""
    try:
        with open(osp.join(root, META_FILE)) as f:
            if json.load(f) != meta:
                return False
    except (OSError, ValueError):
        return False
    for split in SPLITS:
        names = [f'{i:06d}.png' for i in range(meta[f'num_{split}'])]
        for sub in (IMG_DIR, ANN_DIR):
            folder = osp.join(root, sub, split)
            if not all(osp.isfile(osp.join(folder, n)) for n in names):
                return False
    return True


def generate_toy_seg(root: str,
                     num_train: int = 600,
                     num_val: int = 100,
                     size: int = 128,
                     seed: int = 0,
                     max_objects: int = 4,
                     force: bool = False,
                     verbose: bool = False) -> Dict[str, object]:
    """Generate the toy segmentation dataset under ``root`` unless it is there.

    The arguments are those of :func:`mmattn.datasets.toy_coco.generate_toy_coco`
    and mean the same (same arguments, same images).

    Returns:
        dict: ``{'train': (img_dir, ann_dir), 'val': (img_dir, ann_dir),
        'generated': bool, 'pixels': {split: per-class pixel counts} (only
        when generated)}``.
    """
    toy_coco.check_generator_args(num_train, num_val, size, max_objects)
    meta = _expected_meta(num_train, num_val, size, seed, max_objects)
    result = {
        split: (osp.join(root, IMG_DIR, split), osp.join(root, ANN_DIR, split))
        for split in SPLITS
    }
    if not force and is_consistent(root, meta):
        if verbose:
            print(f'Toy segmentation data in {root} is up to date; skip '
                  'generation (use --force to regenerate).')
        result['generated'] = False
        return result

    meta_file = osp.join(root, META_FILE)
    if osp.exists(meta_file):
        os.remove(meta_file)
    for sub in (IMG_DIR, ANN_DIR):
        # Remove stale files of a previous, larger dataset.
        shutil.rmtree(osp.join(root, sub), ignore_errors=True)
    counts = dict(train=num_train, val=num_val)
    result['pixels'] = {}
    for split in SPLITS:
        pixels = make_split(root, split, counts[split], size, seed,
                            max_objects)
        result['pixels'][split] = pixels.tolist()
        if verbose:
            share = ', '.join(f'{name}: {100 * n / pixels.sum():.1f}%'
                              for name, n in zip(CLASSES, pixels))
            print(f'Wrote {counts[split]} images and label maps to '
                  f'{osp.join(root, "*", split)} (pixels: {share})')
    # The meta file is written last: it marks the data as complete.
    with open(meta_file, 'w') as f:
        json.dump(meta, f, indent=2)
    result['generated'] = True
    return result
