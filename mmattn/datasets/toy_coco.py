"""A small synthetic COCO-format instance segmentation dataset.

The images show circles, rectangles and triangles of random size, colour,
position and rotation on a textured, noisy background. Shapes may occlude each
other; every annotation describes the *visible* part of its shape (polygon
``segmentation``, ``area``, ``bbox`` in ``[x, y, w, h]`` and ``iscrowd=0``),
the same way COCO annotates occluded objects.

The generator depends only on numpy, OpenCV and the standard library and is
fully deterministic for a given set of arguments (including ``seed``). It
writes::

    <root>/annotations/instances_train.json
    <root>/annotations/instances_val.json
    <root>/train/000000.png ...
    <root>/val/000000.png ...
    <root>/toy_coco_meta.json      # the arguments used, for idempotency

Use :func:`generate_toy_coco` from Python or ``tools/misc/make_toy_coco.py``
from the command line.
"""
import json
import math
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

# Bump when the generated content changes for the same arguments, so that old
# data on disk is regenerated instead of being silently reused.
GENERATOR_VERSION = 1

CATEGORIES = (
    dict(id=1, name='circle', supercategory='shape'),
    dict(id=2, name='rectangle', supercategory='shape'),
    dict(id=3, name='triangle', supercategory='shape'),
)
CLASSES = tuple(cat['name'] for cat in CATEGORIES)
SPLITS = ('train', 'val')
META_FILE = 'toy_coco_meta.json'

# Shape sizes as fractions of the image size (diameter / longer side).
_MIN_REL_SIZE = 0.12
_MAX_REL_SIZE = 0.40
# An occluded shape must keep at least this fraction of its own area visible.
_MIN_VISIBLE = 0.6
# Minimum distance (L2 over BGR, 0-255) between object and background colour.
_MIN_CONTRAST = 70.0


def _smooth_noise(rng: np.random.Generator, size: int, cells: int,
                  channels: int = 3) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a random grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, (cells, cells, channels)).astype(np.float32)
    noise = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(noise.reshape(size, size, channels), -1, 1)


def _make_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured background: colour gradient, blobs, stripes and clutter."""
    base = rng.uniform(40, 215, 3).astype(np.float32)
    img = np.empty((size, size, 3), np.float32)
    img[:] = base
    img += 45 * _smooth_noise(rng, size, int(rng.integers(2, 5)))
    img += 20 * _smooth_noise(rng, size, int(rng.integers(6, 12)))
    # Oriented stripes of random frequency.
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    freq = rng.uniform(2, 8) * 2 * math.pi / size
    phase = (xx * math.cos(theta) + yy * math.sin(theta)) * freq
    img += (12 * np.sin(phase))[..., None] * rng.uniform(-1, 1, 3)
    # Thin lines as clutter that is not an object.
    for _ in range(int(rng.integers(0, 4))):
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.line(img, p1, p2, colour, 1)
    return img


def _shape_polygon(rng: np.random.Generator, category: int, size: int,
                   extent: float) -> np.ndarray:
    """Vertices (N, 2) of a shape centred at the origin.

    ``extent`` is the diameter (circle) or the longer side (rectangle and
    triangle) in pixels.
    """
    if category == 1:  # circle, slightly elliptic
        radius = extent / 2
        aspect = rng.uniform(0.85, 1.0)
        angles = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        pts = np.stack([radius * np.cos(angles),
                        radius * aspect * np.sin(angles)], 1)
    elif category == 2:  # rectangle
        w = extent
        h = extent * rng.uniform(0.35, 1.0)
        pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    else:  # triangle with angles of at least ~35 degrees
        while True:
            angles = np.sort(rng.uniform(0, 2 * math.pi, 3))
            gaps = np.diff(np.concatenate([angles, angles[:1] + 2 * math.pi]))
            if gaps.min() > math.radians(70):
                break
        pts = np.stack([np.cos(angles), np.sin(angles)], 1) * extent / 2
        pts = pts / (np.ptp(pts, 0).max() / extent)
        pts -= pts.mean(0)
    if category != 1 or rng.random() < 0.5:
        rot = rng.uniform(-math.pi, math.pi) if category == 3 else \
            rng.uniform(-math.pi / 6, math.pi / 6)
        c, s = math.cos(rot), math.sin(rot)
        pts = pts @ np.array([[c, s], [-s, c]])
    return pts


def _raster(points: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def _pick_colour(rng: np.random.Generator,
                 background: np.ndarray) -> np.ndarray:
    for _ in range(50):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - background) >= _MIN_CONTRAST:
            break
    return colour


def _mask_to_annotation(mask: np.ndarray) -> Optional[dict]:
    """Polygons, bbox and area of a binary mask (None if it is too small)."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        contour = contour.reshape(-1, 2)
        if len(contour) < 3:
            continue
        polygons.append([float(v) for v in contour.reshape(-1)])
    if not polygons:
        return None
    points = np.concatenate(
        [np.asarray(p).reshape(-1, 2) for p in polygons], 0)
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    # ``+ 1``: a contour runs through pixel centres, the mask covers the whole
    # pixel, so the box of a one-pixel-wide mask is one pixel wide.
    return dict(
        segmentation=polygons,
        area=float(mask.sum()),
        bbox=[float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)])


def render_scene(rng: np.random.Generator, size: int, max_objects: int
                 ) -> Tuple[np.ndarray, List[dict]]:
    """One image (uint8 BGR) and its shapes in drawing order.

    Each shape is ``dict(category=int, mask=bool array (size, size),
    area=int)``: ``category`` is a 1-based index into :data:`CATEGORIES`,
    ``mask`` the part left visible by the shapes drawn after it (so the masks
    are disjoint) and ``area`` the pixel count of the whole shape. The toy
    COCO annotations and the toy semantic-segmentation label maps are both
    made from these masks.
    """
    img = _make_background(rng, size)
    num = int(rng.integers(1, max_objects + 1))
    shapes = []  # dicts of category, visible mask and full area
    for _ in range(num):
        for _attempt in range(20):
            category = int(rng.integers(1, len(CATEGORIES) + 1))
            extent = size * rng.uniform(_MIN_REL_SIZE, _MAX_REL_SIZE)
            pts = _shape_polygon(rng, category, size, extent)
            lo = -pts.min(0)
            hi = size - 1 - pts.max(0)
            if np.any(hi < lo):
                continue
            pts = pts + rng.uniform(lo, hi)
            mask = _raster(pts, size)
            area = mask.sum()
            if area < 16:
                continue
            # The new shape is drawn on top; every earlier shape must stay
            # mostly visible.
            if all((shape['mask'] & ~mask).sum() >= _MIN_VISIBLE *
                   shape['area'] for shape in shapes):
                break
        else:
            continue
        # The earlier shapes lose the pixels covered by the new one.
        for shape in shapes:
            shape['mask'] &= ~mask
        ys, xs = np.nonzero(mask)
        colour = _pick_colour(rng, img[ys, xs].mean(0))
        shapes.append(dict(category=category, mask=mask, area=area))
        # Fill with a shaded colour so objects are not perfectly flat.
        shade = 1 + 0.15 * _smooth_noise(rng, size, 3, 1)
        img[mask] = (colour[None] * shade[mask])
    img += rng.normal(0, 8, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, shapes


def _render_image(rng: np.random.Generator, size: int, max_objects: int
                  ) -> Tuple[np.ndarray, List[dict]]:
    """One image (uint8 BGR) and its annotations without ids."""
    img, shapes = render_scene(rng, size, max_objects)
    annotations = []
    for shape in shapes:
        ann = _mask_to_annotation(shape['mask'])
        if ann is None:
            continue
        ann.update(category_id=shape['category'], iscrowd=0)
        annotations.append(ann)
    return img, annotations


def _split_seed(seed: int, split: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, SPLITS.index(split)])


def make_split(root: str, split: str, num_images: int, size: int, seed: int,
               max_objects: int) -> dict:
    """Generate one split and return its COCO dict (also written to disk)."""
    img_dir = osp.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images, annotations = [], []
    seeds = _split_seed(seed, split).spawn(num_images)
    for idx, child_seed in enumerate(seeds):
        rng = np.random.default_rng(child_seed)
        img, anns = _render_image(rng, size, max_objects)
        file_name = f'{idx:06d}.png'
        if not cv2.imwrite(osp.join(img_dir, file_name), img):
            raise OSError(f'Could not write {osp.join(img_dir, file_name)}')
        image_id = idx + 1
        images.append(
            dict(id=image_id, file_name=file_name, width=size, height=size))
        for ann in anns:
            ann.update(id=len(annotations) + 1, image_id=image_id)
            annotations.append(ann)
    coco = dict(
        info=dict(
            description=f'mmattn toy COCO ({split})',
            version=str(GENERATOR_VERSION)),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(c) for c in CATEGORIES])
    ann_file = ann_file_path(root, split)
    tmp_file = ann_file + '.tmp'
    with open(tmp_file, 'w') as f:
        json.dump(coco, f)
    os.replace(tmp_file, ann_file)
    return coco


def ann_file_path(root: str, split: str) -> str:
    """Path of the annotation file of ``split`` under ``root``."""
    return osp.join(root, 'annotations', f'instances_{split}.json')


def _expected_meta(num_train: int, num_val: int, size: int, seed: int,
                   max_objects: int) -> dict:
    return dict(
        generator_version=GENERATOR_VERSION,
        num_train=num_train,
        num_val=num_val,
        size=size,
        seed=seed,
        max_objects=max_objects,
        classes=list(CLASSES))


def is_consistent(root: str, meta: dict) -> bool:
    """Whether ``root`` holds a complete dataset generated with ``meta``."""
    meta_file = osp.join(root, META_FILE)
    if not osp.isfile(meta_file):
        return False
    try:
        with open(meta_file) as f:
            if json.load(f) != meta:
                return False
        for split in SPLITS:
            with open(ann_file_path(root, split)) as f:
                coco = json.load(f)
            expected = meta[f'num_{split}']
            if len(coco['images']) != expected:
                return False
            for img in coco['images']:
                if not osp.isfile(osp.join(root, split, img['file_name'])):
                    return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def check_generator_args(num_train: int, num_val: int, size: int, max_objects: int) -> None:
    """Raise a ValueError naming the first argument of a toy-data generator that is out of range."""
    if num_train < 1 or num_val < 1:
        raise ValueError('num_train and num_val must be >= 1, got '
                         f'{num_train} and {num_val}')
    if size < 32:
        raise ValueError(f'size must be >= 32 pixels, got {size}')
    if max_objects < 1:
        raise ValueError(f'max_objects must be >= 1, got {max_objects}')


def add_generator_args(parser, default_out: str) -> None:
    """The command-line arguments of the toy-data generators (tools/misc/make_toy_*.py)."""
    parser.add_argument('--out', default=default_out, help='output root directory')
    parser.add_argument('--num-train', type=int, default=600, help='number of train images')
    parser.add_argument('--num-val', type=int, default=100, help='number of val images')
    parser.add_argument('--size', type=int, default=128, help='image width and height')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--max-objects', type=int, default=4, help='maximum number of shapes per image')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if consistent data already exists')


def generator_kwargs(args) -> dict:
    """The generator's keyword arguments from parsed :func:`add_generator_args` arguments."""
    return dict(num_train=args.num_train, num_val=args.num_val, size=args.size, seed=args.seed,
                max_objects=args.max_objects, force=args.force, verbose=True)


def generate_toy_coco(root: str,
                      num_train: int = 600,
                      num_val: int = 100,
                      size: int = 128,
                      seed: int = 0,
                      max_objects: int = 4,
                      force: bool = False,
                      verbose: bool = False) -> Dict[str, str]:
    """Generate the toy dataset under ``root`` unless it is already there.

    Args:
        root (str): Output directory, e.g. ``data/toy_coco``.
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        size (int): Width and height of the square images in pixels.
        seed (int): Random seed; the output is a pure function of the
            arguments.
        max_objects (int): Maximum number of shapes per image (at least 1).
        force (bool): Regenerate even if consistent data exists.
        verbose (bool): Print what is done.

    Returns:
        dict: ``{'train': ann_file, 'val': ann_file, 'generated': bool}``
        where ``generated`` tells whether the data was (re)written.
    """
    check_generator_args(num_train, num_val, size, max_objects)
    meta = _expected_meta(num_train, num_val, size, seed, max_objects)
    result = {split: ann_file_path(root, split) for split in SPLITS}
    if not force and is_consistent(root, meta):
        if verbose:
            print(f'Toy COCO data in {root} is up to date; skip generation '
                  '(use --force to regenerate).')
        result['generated'] = False
        return result

    meta_file = osp.join(root, META_FILE)
    if osp.exists(meta_file):
        os.remove(meta_file)
    for split in SPLITS:
        # Remove stale images of a previous, larger dataset.
        shutil.rmtree(osp.join(root, split), ignore_errors=True)
    counts = dict(train=num_train, val=num_val)
    for split in SPLITS:
        coco = make_split(root, split, counts[split], size, seed, max_objects)
        if verbose:
            print(f'Wrote {len(coco["images"])} images and '
                  f'{len(coco["annotations"])} instances to '
                  f'{ann_file_path(root, split)}')
    # The meta file is written last: it marks the data as complete.
    with open(meta_file, 'w') as f:
        json.dump(meta, f, indent=2)
    result['generated'] = True
    return result


def summarize(ann_files: Sequence[str]) -> str:
    """One line per annotation file with image and per-class counts."""
    lines = []
    for ann_file in ann_files:
        with open(ann_file) as f:
            coco = json.load(f)
        names = {c['id']: c['name'] for c in coco['categories']}
        counts = {name: 0 for name in names.values()}
        for ann in coco['annotations']:
            counts[names[ann['category_id']]] += 1
        per_class = ', '.join(f'{k}: {v}' for k, v in counts.items())
        lines.append(f'{ann_file}: {len(coco["images"])} images, '
                     f'{len(coco["annotations"])} instances ({per_class})')
    return '\n'.join(lines)
