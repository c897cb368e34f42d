"""Reading finished mmengine work dirs: evaluation results and the config each run used.

A work dir holds run folders named by timestamp (``<work_dir>/<YYYYmmdd_HHMMSS>/``). Validation
results are the lines with ``coco/bbox_mAP`` in ``<run>/vis_data/scalars.json`` (``step`` = epoch);
``tools/test.py`` writes its results to ``<run>/<run>.json``. The config is the one the runner dumped
(``<work_dir>/<config name>.py``, else ``<run>/vis_data/config.py``).
"""
import json
import os
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

from .names import sort_key as backbone_sort_key

TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')
BOX_METRICS = OrderedDict([('AP', 'bbox_mAP'), ('AP50', 'bbox_mAP_50'), ('AP75', 'bbox_mAP_75'),
                           ('APs', 'bbox_mAP_s'), ('APm', 'bbox_mAP_m'), ('APl', 'bbox_mAP_l')])
MASK_METRICS = OrderedDict([('mask AP', 'segm_mAP'), ('mask AP50', 'segm_mAP_50'), ('mask AP75', 'segm_mAP_75')])
# mmseg's IoUMetric, already in percent
SEG_METRICS = OrderedDict([('mIoU', 'mIoU'), ('mAcc', 'mAcc'), ('aAcc', 'aAcc')])
DETECTOR_ORDER = ('FasterRCNN', 'RetinaNet', 'MaskRCNN')


# ----------------------------------------------------------------------------- reading work dirs
def _read_text(path: str) -> str:
    with open(path, encoding='utf-8', errors='replace') as f:
        return f.read()


def read_json_lines(path: str) -> List[dict]:
    """Records of a JSON-lines file (a single JSON document is accepted too); broken lines skipped
    (:func:`json_lines_problem` says whether they make the file corrupt)."""
    text = _read_text(path)
    try:
        obj = json.loads(text)
        return [obj] if isinstance(obj, dict) else [o for o in obj if isinstance(o, dict)]
    except json.JSONDecodeError:
        pass
    records = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut off by a crash, or a corrupt one
        if isinstance(obj, dict):
            records.append(obj)
    return records


def json_lines_problem(path: str) -> Optional[str]:
    """Why a JSON-lines log is corrupt, or None. A cut-off last line (what a run killed while writing
    leaves) is not corruption; bytes that are not UTF-8 or a broken line before the last one are."""
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as err:
        return f'{path} is corrupt: not UTF-8 text ({err.reason} at byte {err.start})'
    try:
        json.loads(text)
        return None
    except json.JSONDecodeError:
        pass
    numbered = [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]
    bad = []
    for number, line in numbered[:-1]:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            bad.append(number)
    if bad:
        return (f'{path} is corrupt: {len(bad)} of {len(numbered)} lines are not JSON (first: line '
                f'{bad[0]})')
    return None


def _metric_prefix(record: dict) -> Optional[str]:
    for key, value in record.items():
        if key.endswith('bbox_mAP') and isinstance(value, (int, float)):
            return key[:-len('bbox_mAP')]
    return None


def extract_metrics(record: dict) -> Optional[Dict[str, float]]:
    """``{'AP': 37.4, 'AP50': ..., 'mask AP': ...}`` (x100) from a log record, ``{'mIoU': 78.2, 'mAcc':
    ..., 'aAcc': ...}`` from a segmentation record, or None without either."""
    prefix = _metric_prefix(record)
    if prefix is None:
        if not isinstance(record.get('mIoU'), (int, float)):
            return None
        return OrderedDict((name, float(record[key])) for name, key in SEG_METRICS.items()
                           if isinstance(record.get(key), (int, float)))
    out = OrderedDict()
    for name, key in list(BOX_METRICS.items()) + list(MASK_METRICS.items()):
        value = record.get(prefix + key)
        if isinstance(value, (int, float)) and value >= 0:  # pycocotools reports -1 for empty ranges
            out[name] = 100.0 * float(value)
    return out


def find_work_dirs(roots: Sequence[str], max_depth: int = 4) -> List[str]:
    """Folders that contain at least one mmengine run folder (named by timestamp)."""
    found = []
    for root in roots:
        if not osp.isdir(root):
            raise FileNotFoundError(f'work dir root {root!r} does not exist')
        base_depth = osp.abspath(root).count(os.sep)
        for dirpath, dirnames, _ in os.walk(root):
            if any(TIMESTAMP.match(d) for d in dirnames):
                found.append(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not TIMESTAMP.match(d) and not d.startswith('.'))
            if osp.abspath(dirpath).count(os.sep) - base_depth >= max_depth:
                dirnames[:] = []
    return sorted(set(found))


def _log_files(work_dir: str) -> List[tuple]:
    """``(run, kind, path)`` of the validation logs and tools/test.py results of ``work_dir``."""
    files = []
    for run in sorted(d for d in os.listdir(work_dir) if TIMESTAMP.match(d)):
        run_dir = osp.join(work_dir, run)
        scalars = osp.join(run_dir, 'vis_data', 'scalars.json')
        if not osp.isfile(scalars):  # older layouts: only vis_data/<run>.json
            scalars = osp.join(run_dir, 'vis_data', f'{run}.json')
        if osp.isfile(scalars):
            files.append((run, 'val', scalars))
        test_json = osp.join(run_dir, f'{run}.json')
        if osp.isfile(test_json):
            files.append((run, 'test', test_json))
    return files


def evaluations(work_dir: str) -> List[dict]:
    """Every evaluation of ``work_dir``: dicts with run, kind ('val'/'test'), step, metrics."""
    evals = []
    for run, kind, path in _log_files(work_dir):
        for i, rec in enumerate(read_json_lines(path)):
            metrics = extract_metrics(rec)
            if metrics:
                evals.append(dict(run=run, kind=kind, step=rec.get('step') if kind == 'val' else None,
                                  order=i, metrics=metrics))
    return evals


def log_problems(work_dir: str) -> List[str]:
    """:func:`json_lines_problem` of every log of ``work_dir`` that is corrupt."""
    return [p for p in (json_lines_problem(path) for _, _, path in _log_files(work_dir)) if p]


def dumped_config(work_dir: str) -> Optional[str]:
    """The config the runner dumped into ``work_dir`` (newest), else a run's vis_data/config.py."""
    candidates = [osp.join(work_dir, f) for f in os.listdir(work_dir) if f.endswith('.py')]
    if candidates:
        return max(candidates, key=osp.getmtime)
    for run in sorted((d for d in os.listdir(work_dir) if TIMESTAMP.match(d)), reverse=True):
        path = osp.join(work_dir, run, 'vis_data', 'config.py')
        if osp.isfile(path):
            return path
    return None


def describe_config(path: str) -> dict:
    """Detector, backbone, depth, dataset, epochs (and the model config) of a dumped config."""
    from mmengine.config import Config
    cfg = Config.fromfile(path, import_custom_modules=False)
    model = cfg.get('model', {}) or {}
    backbone = model.get('backbone', {}) or {}
    dataset = (cfg.get('train_dataloader', {}) or {}).get('dataset', {}) or {}
    while isinstance(dataset, dict) and 'dataset' in dataset and 'ann_file' not in dataset:  # wrappers
        dataset = dataset['dataset']
    train_cfg = cfg.get('train_cfg', {}) or {}
    dataset_name = '?'
    if isinstance(dataset, dict):
        dataset_name = str(dataset.get('type', '?')).split('.')[-1]
        if dataset.get('data_root'):
            dataset_name += f' ({str(dataset["data_root"]).rstrip("/")})'
    detector = str(model.get('type', '?')).split('.')[-1]
    if cfg.get('default_scope') == 'mmseg':  # a segmentor: named by its decode head (PSPHead, UPerHead...)
        detector = str((model.get('decode_head') or {}).get('type', detector)).split('.')[-1]
    return dict(detector=detector,
                backbone=str(backbone.get('type', '?')).split('.')[-1], depth=backbone.get('depth'),
                dataset=dataset_name, max_epochs=train_cfg.get('max_epochs'),
                max_iters=train_cfg.get('max_iters'), task='seg' if cfg.get('default_scope') == 'mmseg' else 'det')


def collect(roots: Sequence[str], select: str = 'last', allow_partial: bool = False) -> List[dict]:
    """One result per config name (the newest work dir wins). Unfinished runs are marked."""
    results: Dict[str, dict] = OrderedDict()
    for work_dir in find_work_dirs(roots):
        evals = evaluations(work_dir)
        cfg_path = dumped_config(work_dir)
        problems = log_problems(work_dir)
        if not evals or cfg_path is None:
            why = 'no dumped config' if evals else '; '.join(problems) or 'no evaluation results'
            print(f'skip {work_dir}: {why}', file=sys.stderr)
            continue
        for problem in problems:
            print(f'warning: {problem}; results read from its readable lines', file=sys.stderr)
        tests = [e for e in evals if e['kind'] == 'test']
        if select == 'best':
            chosen = max(evals, key=lambda e: e['metrics'].get('AP', e['metrics'].get('mIoU', -1)))
        elif tests:
            chosen = max(tests, key=lambda e: (e['run'], e['order']))
        else:
            chosen = max(evals, key=lambda e: (e['run'], e['step'] if isinstance(e['step'], int) else -1, e['order']))
        try:
            info = describe_config(cfg_path)
        except Exception as err:  # a broken dump should not stop the whole table
            print(f'skip {work_dir}: cannot read {cfg_path}: {err}', file=sys.stderr)
            continue
        name = osp.splitext(osp.basename(cfg_path))[0]
        if name == 'config':  # vis_data/config.py: fall back to the work dir's name
            name = osp.basename(osp.normpath(work_dir))
        finished = True
        if chosen['kind'] == 'val' and isinstance(chosen['step'], int):
            if info['max_epochs']:
                finished = chosen['step'] >= info['max_epochs']
            elif info['max_iters']:  # iteration-based (mmseg's schedules): the step is the iteration
                finished = chosen['step'] >= info['max_iters']
        result = dict(info, name=name, work_dir=work_dir, config=cfg_path, run=chosen['run'],
                      evaluated=('test' if chosen['kind'] == 'test' else f'val e{chosen["step"]}'),
                      finished=finished, metrics=chosen['metrics'])
        previous = results.get(name)
        if previous is not None:
            newer = result if result['run'] >= previous['run'] else previous
            print(f'note: {name} has results in {previous["work_dir"]} and {work_dir}; using the newer run '
                  f'{newer["run"]} ({newer["work_dir"]})', file=sys.stderr)
            result = newer
        results[name] = result
    out = list(results.values())
    for r in out:
        if not r['finished']:
            length = f'{r["max_epochs"]} epochs' if r['max_epochs'] else f'{r.get("max_iters")} iterations'
            print(f'note: {r["name"]} is unfinished ({r["evaluated"]} of {length})'
                  + ('' if allow_partial else '; it is not written to the metafiles'), file=sys.stderr)
    return sorted(out, key=sort_key)


def sort_key(r: dict):
    det = DETECTOR_ORDER.index(r['detector']) if r['detector'] in DETECTOR_ORDER else len(DETECTOR_ORDER)
    bb = backbone_sort_key(r['backbone'])
    return (r['dataset'], r['max_epochs'] or 0, det, r['detector'], r['depth'] or 0, bb, r['name'])
