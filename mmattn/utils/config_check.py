"""Checks run by ``tools/train.py`` and ``tools/test.py`` before the runner.

mmdet reports a missing annotation file, a truncated JSON file, a missing
image or a misspelled backbone type deep inside the dataset or registry code,
often without saying which file or config key is wrong. These checks fail
early with a :class:`ConfigCheckError` whose message names the file or key and
says how to fix it.
"""
import difflib
import json
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

# Annotation files larger than this are only checked for existence; parsing
# them twice (here and in the dataset) would slow down the start noticeably.
DEEP_CHECK_MAX_BYTES = 64 * 1024 * 1024
# At most this many missing files are listed in an error message.
_MAX_LISTED = 5
_REMOTE_PREFIXES = ('http://', 'https://', 's3://', 'petrel://', 'pavi://',
                    'torchvision://', 'open-mmlab://', 'openmmlab://',
                    'mmcls://', 'mmpretrain://', 'modelzoo://')
# Config keys of a detector whose values are built from ``MODELS``.
_MODEL_KEYS = ('backbone', 'neck', 'data_preprocessor')
_MODEL_KEY_SUFFIXES = ('_head', '_roi_extractor')


class ConfigCheckError(RuntimeError):
    """A config refers to a file or type that does not exist or is broken.

    The message names the file or config key and what to do about it.
    """


def _is_remote(path: str) -> bool:
    return path.startswith(_REMOTE_PREFIXES)


def _data_hint(path: str) -> str:
    """What to do about a missing or broken data file."""
    hint = ('Paths in a config are relative to the current working directory '
            f'({os.getcwd()}); run the command from the directory the config '
            'expects, or override data_root with --cfg-options.')
    if 'toy_coco' in path:
        root = path.split('toy_coco')[0] + 'toy_coco'
        hint = ('Generate the toy dataset with `python '
                f'tools/misc/make_toy_coco.py --out {root}` (add --force to '
                'rewrite broken files). ' + hint)
    elif 'toy_seg' in path:
        root = path.split('toy_seg')[0] + 'toy_seg'
        hint = ('Generate the toy segmentation dataset with `python '
                f'tools/misc/make_toy_seg.py --out {root}` (add --force to '
                'rewrite broken files). ' + hint)
    return hint


# mmseg is the optional `seg` extra of mmattn; this says how to get it.
SEG_EXTRA_HINT = ('MMSegmentation is the `seg` extra of mmattn: install it with '
                  '`pip install -r requirements/seg.txt` (or `pip install -e .[seg]` '
                  'in the mmattn checkout); `python3 tools/bootstrap.py setup` '
                  'installs it too.')


def check_seg_extra(config: str, cfg=None, error: Optional[BaseException] = None) -> None:
    """Fail with the install command when a segmentation config is used without mmseg.

    Args:
        config (str): The config path, for the message.
        cfg (Config, optional): The loaded config; an ``mmseg`` default scope
            needs mmseg.
        error (Exception, optional): What loading the config raised; mmengine
            raises ``ModuleNotFoundError`` for a ``_base_ = 'mmseg::...'``
            without mmseg.

    Raises:
        ConfigCheckError: If the config needs mmseg and it is not importable.
    """
    if error is not None:
        if isinstance(error, ModuleNotFoundError) and \
                'mmsegmentation' in str(error):
            raise ConfigCheckError(
                f'{config} inherits MMSegmentation configs (`mmseg::`), but '
                f'mmsegmentation is not installed. {SEG_EXTRA_HINT}') from None
        return
    if cfg is None or cfg.get('default_scope') != 'mmseg':
        return
    try:
        import mmseg  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != 'mmseg':
            raise
        raise ConfigCheckError(
            f'{config} is a segmentation config (default_scope=\'mmseg\'), but '
            f'mmsegmentation is not installed. {SEG_EXTRA_HINT}') from None


def _iter_datasets(dataset_cfg, key: str) -> Iterator[Tuple[dict, str]]:
    """Yield ``(cfg, key path)`` of every leaf dataset, unwrapping wrappers
    such as ``RepeatDataset`` (``dataset``) and ``ConcatDataset``
    (``datasets``)."""
    if not isinstance(dataset_cfg, dict):
        return
    if 'dataset' in dataset_cfg:
        yield from _iter_datasets(dataset_cfg['dataset'], f'{key}.dataset')
    if 'datasets' in dataset_cfg:
        for i, sub in enumerate(dataset_cfg['datasets']):
            yield from _iter_datasets(sub, f'{key}.datasets[{i}]')
    if 'ann_file' in dataset_cfg or _is_seg_dataset(dataset_cfg):
        yield dataset_cfg, key


def _is_seg_dataset(dataset_cfg: dict) -> bool:
    """An mmseg dataset that lists image and label-map folders (no ann_file)."""
    prefix = dataset_cfg.get('data_prefix') or {}
    return isinstance(prefix, dict) and 'seg_map_path' in prefix and \
        not dataset_cfg.get('ann_file')


def _check_seg_folders(dataset_cfg: dict, key: str, needs_gt: bool) -> None:
    """The image and label-map folders of an mmseg dataset exist and hold files."""
    prefix = dataset_cfg['data_prefix']
    folders = [('img_path', 'img_suffix', '.jpg')]  # mmseg's BaseSegDataset defaults
    if needs_gt:
        folders.append(('seg_map_path', 'seg_map_suffix', '.png'))
    for name, suffix_key, default_suffix in folders:
        folder = _join(dataset_cfg.get('data_root'), prefix.get(name) or '')
        if not folder or _is_remote(folder):
            continue
        if not osp.isdir(folder):
            raise ConfigCheckError(
                f'Folder {folder} (from {key}.data_root and '
                f'{key}.data_prefix.{name}) does not exist. ' + _data_hint(folder))
        suffix = dataset_cfg.get(suffix_key, default_suffix)
        if not any(f.endswith(suffix) for f in os.listdir(folder)):
            raise ConfigCheckError(
                f'Folder {folder} (from {key}.data_prefix.{name}) holds no file '
                f'ending in {key}.{suffix_key}={suffix!r}. ' + _data_hint(folder))


def _join(root: Optional[str], path: str) -> str:
    if not path or not root or osp.isabs(path) or _is_remote(path):
        return path
    return osp.join(root, path)


def _load_json(path: str, key: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ConfigCheckError(
            f'Annotation file {path} (from {key}) is not valid JSON: {e}. '
            'The file is malformed or truncated; restore or regenerate it. ' +
            _data_hint(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigCheckError(
            f'Annotation file {path} (from {key}) cannot be read: {e}. ' +
            _data_hint(path)) from None
    return data


def _check_coco_dict(data, path: str, key: str) -> None:
    if not isinstance(data, dict):
        raise ConfigCheckError(
            f'Annotation file {path} (from {key}) must hold a JSON object '
            f'with "images", "annotations" and "categories", got '
            f'{type(data).__name__}. ' + _data_hint(path))
    for field in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(field), list):
            raise ConfigCheckError(
                f'Annotation file {path} (from {key}) has no "{field}" list; '
                'it is not a COCO instances file. ' + _data_hint(path))
    category_ids = set()
    for cat in data['categories']:
        if not isinstance(cat, dict) or not {'id', 'name'} <= cat.keys():
            raise ConfigCheckError(
                f'Annotation file {path}: every entry of "categories" needs '
                f'"id" and "name", got {cat!r}. ' + _data_hint(path))
        category_ids.add(cat['id'])
    image_ids = set()
    for img in data['images']:
        if not isinstance(img, dict) or not {'id', 'file_name'} <= img.keys():
            raise ConfigCheckError(
                f'Annotation file {path}: every entry of "images" needs "id" '
                f'and "file_name", got {img!r}. ' + _data_hint(path))
        image_ids.add(img['id'])
    for ann in data['annotations']:
        required = {'id', 'image_id', 'category_id', 'bbox'}
        if not isinstance(ann, dict) or not required <= ann.keys():
            raise ConfigCheckError(
                f'Annotation file {path}: annotation {ann!r:.200} lacks one '
                f'of {sorted(required)}. ' + _data_hint(path))
        bbox = ann['bbox']
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ConfigCheckError(
                f'Annotation file {path}: annotation id={ann["id"]} has bbox '
                f'{bbox!r}; COCO boxes are [x, y, width, height]. ' +
                _data_hint(path))
        if ann['image_id'] not in image_ids:
            raise ConfigCheckError(
                f'Annotation file {path}: annotation id={ann["id"]} refers to '
                f'image_id={ann["image_id"]}, which is not in "images". ' +
                _data_hint(path))
        if ann['category_id'] not in category_ids:
            raise ConfigCheckError(
                f'Annotation file {path}: annotation id={ann["id"]} refers to '
                f'category_id={ann["category_id"]}, which is not in '
                '"categories". ' + _data_hint(path))


def _check_classes(dataset_cfg: dict, data: dict, path: str, key: str):
    metainfo = dataset_cfg.get('metainfo') or {}
    classes = metainfo.get('classes')
    if not classes:
        return
    names = [cat['name'] for cat in data['categories']]
    if not set(classes) & set(names):
        raise ConfigCheckError(
            f'None of the classes {tuple(classes)} in {key}.metainfo match '
            f'the categories {names} of {path}; every image would be empty. '
            'Set metainfo=dict(classes=...) to category names of the file.')


def _check_images(dataset_cfg: dict, data: dict, path: str, key: str):
    data_prefix = dataset_cfg.get('data_prefix') or {}
    img_prefix = data_prefix.get('img', data_prefix.get('img_path'))
    if img_prefix is None:
        return
    img_dir = _join(dataset_cfg.get('data_root'), img_prefix)
    if _is_remote(img_dir):
        return
    if not osp.isdir(img_dir):
        raise ConfigCheckError(
            f'Image directory {img_dir} (from {key}.data_root and '
            f'{key}.data_prefix.img) does not exist, but {path} lists '
            f'{len(data["images"])} images in it. ' + _data_hint(img_dir))
    missing = [
        img['file_name'] for img in data['images']
        if not osp.isfile(osp.join(img_dir, img['file_name']))
    ]
    if missing:
        listed = ', '.join(
            osp.join(img_dir, name) for name in missing[:_MAX_LISTED])
        more = '' if len(missing) <= _MAX_LISTED else ', ...'
        raise ConfigCheckError(
            f'{len(missing)} of {len(data["images"])} images listed in {path} '
            f'are missing: {listed}{more}. Restore the images or remove them '
            'from the annotation file. ' + _data_hint(img_dir))


class DataWarning(UserWarning):
    """Annotations that mmdet drops without a word (reported with their ids)."""


def _ids(anns: List[dict]) -> str:
    ids = ', '.join(str(a.get('id')) for a in anns[:_MAX_LISTED])
    return ids + (', ...' if len(anns) > _MAX_LISTED else '')


def _loads_masks(dataset_cfg: dict) -> bool:
    return any(
        isinstance(t, dict) and 'LoadAnnotations' in str(t.get('type', ''))
        and t.get('with_mask') for t in dataset_cfg.get('pipeline') or [])


def _box_problem(ann: dict, img: dict) -> str:
    """Why mmdet's CocoDataset drops a box (its rules, in words)."""
    x1, y1, w, h = ann['bbox']
    if w < 1 or h < 1:
        return 'width or height below 1 pixel'
    if ann.get('area', 1) <= 0:
        return 'area <= 0'
    return f'outside the {img.get("width")} x {img.get("height")} image'


def _mmdet_keeps(cat_ids: List[int]):
    """``keeps(ann, img)``: whether mmdet's ``CocoDataset.parse_data_info``
    keeps the annotation (its own code decides)."""
    from types import SimpleNamespace

    from mmdet.datasets import CocoDataset
    fake = SimpleNamespace(
        data_prefix=dict(img=''), seg_map_suffix='.png', return_classes=False,
        metainfo={}, cat_ids=cat_ids,
        cat2label={c: i for i, c in enumerate(cat_ids)})

    def keeps(ann: dict, img: dict) -> bool:
        raw = dict(raw_img_info=dict(img, img_id=img['id']), raw_ann_info=[ann])
        return bool(CocoDataset.parse_data_info(fake, raw)['instances'])

    return keeps


def _segmentation_problem(segm) -> Optional[str]:
    if isinstance(segm, dict):
        return None if {'counts', 'size'} <= segm.keys() else \
            'an RLE dict without "counts" and "size"'
    if not isinstance(segm, list) or not segm:
        return 'empty' if segm in (None, [], {}) else f'a {type(segm).__name__}'
    for poly in segm:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            return ('a polygon with fewer than 3 points or an odd number of '
                    'coordinates')
    return None


def _check_instances(dataset_cfg: dict, data: dict, path: str, key: str,
                     split: str, needs_gt: bool) -> None:
    """Name the annotations that mmdet would drop silently or choke on."""
    if not data['annotations']:
        if split == 'train' or needs_gt:
            use = ('training has no ground truth' if split == 'train' else
                   'the evaluator has no ground truth to compare with')
            raise ConfigCheckError(
                f'Annotation file {path} (from {key}) has "annotations": [] '
                f'({len(data["images"])} images): {use}. Point {key}.ann_file '
                'at the annotated file of this split. ' + _data_hint(path))
        return
    images = {img['id']: img for img in data['images']}
    for img in data['images']:
        if 'width' not in img or 'height' not in img:
            raise ConfigCheckError(
                f'Annotation file {path}: image id={img["id"]} '
                f'({img["file_name"]}) has no "width" and "height"; mmdet '
                'needs both. ' + _data_hint(path))
    classes = ((dataset_cfg.get('metainfo') or {}).get('classes'))
    cat_ids = [c['id'] for c in data['categories']
               if not classes or c['name'] in classes]
    in_classes = [a for a in data['annotations']
                  if a['category_id'] in cat_ids and not a.get('ignore')]
    dropped, kept = [], []
    keeps = _mmdet_keeps(cat_ids)
    for ann in in_classes:
        (kept if keeps(ann, images[ann['image_id']]) else dropped).append(ann)
    if dropped:
        reasons: dict = {}
        for ann in dropped:
            reasons.setdefault(_box_problem(ann, images[ann['image_id']]),
                               []).append(ann)
        detail = '; '.join(f'{len(a)} {why} (ids {_ids(a)})'
                           for why, a in reasons.items())
        message = (f'{path} (from {key}): {len(dropped)} of {len(in_classes)} '
                   f'boxes are invalid and dropped by mmdet: {detail}.')
        if not kept:
            raise ConfigCheckError(
                message + ' No valid instance is left, so there is nothing '
                'to learn from (or evaluate against). Fix the boxes: COCO '
                'boxes are [x, y, width, height] in pixels inside the image. ' +
                _data_hint(path))
        import warnings
        warnings.warn(message, DataWarning, stacklevel=3)
    if _loads_masks(dataset_cfg):
        bad = [(a, _segmentation_problem(a.get('segmentation'))) for a in kept]
        bad = [(a, why) for a, why in bad if why]
        if bad:
            raise ConfigCheckError(
                f'{path} (from {key}): {len(bad)} annotations have no usable '
                f'segmentation although the pipeline loads masks '
                f'(with_mask=True): ids {_ids([a for a, _ in bad])} (first: '
                f'{bad[0][1]}). Give each a polygon list [[x1, y1, x2, y2, '
                'x3, y3, ...]] or an RLE dict, remove them, or load boxes '
                'only. ' + _data_hint(path))


def check_dataset(dataset_cfg: dict, key: str, split: str = 'train',
                  needs_gt: bool = True) -> List[Tuple[str, dict]]:
    """Check the annotation file, images and instances of one dataset config.

    Args:
        dataset_cfg (dict): A dataset config with ``ann_file``; wrappers
            (``dataset``/``datasets`` keys) are unwrapped.
        key (str): Where the config lives, e.g. ``train_dataloader.dataset``,
            used in error messages.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        needs_gt (bool): Whether an evaluator compares with the annotations
            (an evaluation split without annotations is then an error).

    Returns:
        list[tuple[str, dict]]: ``(path, data)`` of each annotation file
        that was parsed.

    Raises:
        ConfigCheckError: If a file is missing or malformed, or no instance
            is valid.
    """
    parsed = []
    for ds_cfg, ds_key in _iter_datasets(dataset_cfg, key):
        if ds_cfg.get('backend_args'):
            continue  # a remote file backend; cannot check locally
        if _is_seg_dataset(ds_cfg):
            _check_seg_folders(ds_cfg, ds_key, needs_gt or split == 'train')
            continue
        ann_file = _join(ds_cfg.get('data_root'), ds_cfg.get('ann_file', ''))
        if not ann_file or _is_remote(ann_file):
            continue
        if not osp.isfile(ann_file):
            raise ConfigCheckError(
                f'Annotation file {ann_file} (from {ds_key}.data_root and '
                f'{ds_key}.ann_file) does not exist. ' + _data_hint(ann_file))
        if not ann_file.endswith('.json') or \
                osp.getsize(ann_file) > DEEP_CHECK_MAX_BYTES:
            continue
        data = _load_json(ann_file, f'{ds_key}.ann_file')
        _check_coco_dict(data, ann_file, ds_key)
        _check_classes(ds_cfg, data, ann_file, ds_key)
        _check_images(ds_cfg, data, ann_file, ds_key)
        _check_instances(ds_cfg, data, ann_file, ds_key, split, needs_gt)
        parsed.append((ann_file, data))
    return parsed


def _metrics(evaluator_cfg) -> list:
    metrics = evaluator_cfg if isinstance(evaluator_cfg, (list, tuple)) \
        else [evaluator_cfg]
    return [m for m in metrics if isinstance(m, dict)]


def _image_contents(data: dict) -> dict:
    """image id -> (file name, sorted boxes) of a COCO dict."""
    boxes: dict = {}
    for ann in data.get('annotations') or []:
        if isinstance(ann, dict):
            boxes.setdefault(ann.get('image_id'), []).append(
                tuple(ann.get('bbox') or ()))
    return {img.get('id'): (img.get('file_name'), sorted(boxes.get(img.get('id'), [])))
            for img in data.get('images') or [] if isinstance(img, dict)}


def _check_evaluator(evaluator_cfg, key: str,
                     datasets: Sequence[Tuple[str, dict]] = ()) -> None:
    metrics = _metrics(evaluator_cfg)
    for i, metric in enumerate(metrics):
        where = key if len(metrics) == 1 else f'{key}[{i}]'
        ann_file = metric.get('ann_file')
        if not ann_file or _is_remote(ann_file):
            continue
        if not osp.isfile(ann_file):
            raise ConfigCheckError(
                f'Annotation file {ann_file} (from {where}.ann_file) does not '
                'exist. ' + _data_hint(ann_file))
        if len(datasets) != 1 or metric.get('format_only'):
            continue
        data_file, data = datasets[0]
        if osp.realpath(data_file) == osp.realpath(ann_file) or \
                osp.getsize(ann_file) > DEEP_CHECK_MAX_BYTES:
            continue
        truth = _load_json(ann_file, f'{where}.ann_file')
        ours, theirs = _image_contents(data), _image_contents(truth)
        differ = [img for img in data['images']
                  if theirs.get(img['id']) != ours[img['id']]]
        if differ:
            first = differ[0]
            raise ConfigCheckError(
                f'{where}.ann_file {ann_file} does not describe the images '
                f'being evaluated ({data_file}): {len(differ)} of '
                f'{len(data["images"])} of them are missing from it or have '
                f'other file names or boxes there (first: id={first["id"]} '
                f'{first["file_name"]}), so the metric would compare with the '
                'wrong ground truth. Point both at the same file, e.g. '
                f'--cfg-options {where}.ann_file={data_file}')


def check_data(cfg, splits: Sequence[str] = ('train', 'val')) -> None:
    """Check the datasets and evaluators of ``splits`` in ``cfg``.

    Args:
        cfg (Config): The full config.
        splits (Sequence[str]): Any of ``'train'``, ``'val'`` and ``'test'``;
            splits whose dataloader is missing or ``None`` are skipped.
    """
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or not loader.get('dataset'):
            continue
        evaluator = cfg.get(f'{split}_evaluator')
        metrics = _metrics(evaluator) if evaluator else []
        needs_gt = any(not m.get('format_only') for m in metrics)
        parsed = check_dataset(loader['dataset'], f'{split}_dataloader.dataset',
                               split, needs_gt)
        if evaluator:
            _check_evaluator(evaluator, f'{split}_evaluator', parsed)


def _iter_model_types(model_cfg: dict, key: str
                      ) -> Iterator[Tuple[str, str]]:
    if isinstance(model_cfg.get('type'), str):
        yield model_cfg['type'], f'{key}.type'
    for name, value in model_cfg.items():
        if not (name in _MODEL_KEYS or name.endswith(_MODEL_KEY_SUFFIXES)):
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(items):
            if isinstance(item, dict):
                sub = f'{key}.{name}' if len(items) == 1 and \
                    not isinstance(value, (list, tuple)) \
                    else f'{key}.{name}[{i}]'
                yield from _iter_model_types(item, sub)


def _registered_names(registry) -> List[str]:
    names = []
    while registry is not None:
        names.extend(registry.module_dict)
        registry = registry.parent
    return names


def mmattn_backbones() -> List[str]:
    """Names of the backbones that ``import mmattn.models`` registers."""
    from mmdet.registry import MODELS
    prefix = 'mmattn.models.backbones'
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if getattr(cls, '__module__', '').startswith(prefix))


def check_model_types(cfg) -> None:
    """Check that every model component type in ``cfg.model`` is registered.

    The ``mmdet`` and ``mmseg`` scopes are checked (those of mmattn's configs);
    configs of other scopes are left to the registry.

    Raises:
        ConfigCheckError: For the first unknown type, naming the config key,
            close matches and the mmattn backbones.
    """
    model_cfg = cfg.get('model')
    if not isinstance(model_cfg, dict):
        return
    scope = model_cfg.get('_scope_', cfg.get('default_scope', 'mmdet'))
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        return
    for type_name, key in _iter_model_types(model_cfg, 'model'):
        if MODELS.get(type_name) is not None:
            continue
        candidates = _registered_names(MODELS)
        close = difflib.get_close_matches(type_name, candidates, n=3)
        suggestion = f" Did you mean {' or '.join(map(repr, close))}?" \
            if close else ''
        ours = ', '.join(mmattn_backbones()) or \
            'none registered - is `mmattn.models` importable?'
        raise ConfigCheckError(
            f'Unknown type {type_name!r} at {key} in the config: it is not '
            f'registered in {scope}.registry.MODELS.{suggestion} Backbones '
            f'provided by mmattn: {ours}. If the type comes from another '
            'package, add that package to the config, e.g. custom_imports = '
            "dict(imports=['my_package.models'], allow_failed_imports=False)."
        )


def check_checkpoint_path(path: Optional[str], key: str, pretrained: bool = False) -> None:
    """Check that a local checkpoint file exists.

    Args:
        path (str, optional): The checkpoint path; URLs and ``None`` pass.
        key (str): Where the path comes from (a CLI argument or config key),
            used in the error message.
        pretrained (bool): The path is a backbone's ImageNet-pretrained
            weights (``init_cfg.checkpoint``), not a file of tools/train.py.
    """
    if not path or _is_remote(path):
        return
    if osp.isdir(path):
        raise ConfigCheckError(
            f'Checkpoint {path} (from {key}) is a directory; pass a .pth file '
            f'inside it, e.g. {osp.join(path, "epoch_12.pth")}, or the '
            f'checkpoint named in {osp.join(path, "last_checkpoint")}.')
    if not osp.isfile(path) and pretrained:
        raise ConfigCheckError(
            f'ImageNet-pretrained backbone checkpoint {path} (from {key}) does '
            'not exist. Download the official ImageNet weights of the backbone '
            'and convert them with tools/model_converters/official2mmattn.py '
            '(see configs/README.md, "Pretrained backbones"), pass another path '
            f'with --cfg-options {key}=PATH, or train from scratch with '
            '--cfg-options model.backbone.init_cfg=None.')
    if not osp.isfile(path):
        raise ConfigCheckError(
            f'Checkpoint file {path} (from {key}) does not exist. Pass the '
            'path of a .pth file written by tools/train.py (it saves '
            'work_dirs/<config name>/epoch_N.pth or iter_N.pth and names the '
            'newest one in work_dirs/<config name>/last_checkpoint), or train '
            'the model first.')


def check_config(cfg, mode: str = 'train') -> None:
    """Run every check for ``tools/train.py`` or ``tools/test.py``.

    Args:
        cfg (Config): The config after command line overrides.
        mode (str): ``'train'`` checks the train and val data, ``'test'``
            the test data.
    """
    assert mode in ('train', 'test'), f'unknown mode {mode!r}'
    check_model_types(cfg)
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    init_cfg = backbone.get('init_cfg') if isinstance(backbone, dict) \
        else None
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        check_checkpoint_path(
            init_cfg.get('checkpoint'), 'model.backbone.init_cfg.checkpoint',
            pretrained=True)
    if mode == 'train':
        splits = ['train']
        if cfg.get('val_cfg') and cfg.get('val_dataloader'):
            splits.append('val')
        check_data(cfg, splits)
        check_checkpoint_path(cfg.get('load_from'), 'load_from')
    else:
        check_data(cfg, ['test'])


def _checkpoint_number(path: str) -> Tuple[int, int]:
    """Sort key of mmengine's checkpoint names: (epoch/iter number, mtime) for epoch_N.pth, iter_N.pth."""
    import re
    m = re.search(r'(\d+)\.pth$', osp.basename(path))
    return (int(m.group(1)) if m else -1, int(osp.getmtime(path)))


def previous_good_checkpoint(path: str) -> Optional[str]:
    """The newest other ``.pth`` file next to ``path`` that is a readable checkpoint archive."""
    from .checkpoint import describe_file_problem
    folder = osp.dirname(osp.abspath(path))
    candidates = [
        osp.join(folder, name) for name in os.listdir(folder)
        if name.endswith('.pth') and osp.join(folder, name) != osp.abspath(path)
    ]
    for candidate in sorted(candidates, key=_checkpoint_number, reverse=True):
        if describe_file_problem(candidate) is None:
            return candidate
    return None


def check_resume_checkpoint(path: Optional[str], key: str) -> None:
    """Check that the checkpoint to resume from is a complete file.

    A run killed while saving leaves an empty or truncated file, which mmengine reports as a bare
    ``EOFError``. The message names the file and the newest good checkpoint next to it.
    """
    if not path or _is_remote(path):
        return
    check_checkpoint_path(path, key)
    from .checkpoint import describe_file_problem
    problem = describe_file_problem(path)
    if problem is None:
        return
    previous = previous_good_checkpoint(path)
    advice = (f'Resume from the previous good checkpoint instead: --resume {previous}'
              if previous else 'No other complete checkpoint is next to it; train from the start')
    raise ConfigCheckError(f'Checkpoint {path} (from {key}) {problem}. {advice}.')


def check_auto_resume(work_dir: str) -> None:
    """``--resume`` without a path resumes from the file named in ``<work_dir>/last_checkpoint``;
    check that file like :func:`check_resume_checkpoint`."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return  # mmengine then trains from the start, and says so
    with open(record) as f:
        path = f.read().strip()
    if path:
        check_resume_checkpoint(path, f'--resume (named in {record})')
