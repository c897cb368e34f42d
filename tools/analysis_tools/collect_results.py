#!/usr/bin/env python
"""Collect COCO results from finished ``work_dirs`` into the papers' table (and figure).

For every experiment folder under the given roots (a folder holding mmengine run folders named by
timestamp, ``<work_dir>/<YYYYmmdd_HHMMSS>/``) it reads

* evaluation results: ``<run>/vis_data/scalars.json`` (JSON lines written during training; lines with
  ``coco/bbox_mAP`` are validation results, ``step`` = epoch) and ``<run>/<run>.json`` (one JSON dict
  written by ``tools/test.py``). By default the newest test result is used, else the last validation
  result (``--select best`` takes the best box AP instead);
* the config dumped by the runner (``<work_dir>/<config name>.py``, else ``<run>/vis_data/config.py``)
  for the detector, backbone, depth, dataset and schedule.

It prints (and ``--out`` writes) one markdown table, rows = detector x backbone, columns params,
GFLOPs (``tools/analysis_tools/get_flops.py``, ``--flops compute`` or ``--flops-json`` records; the
``full`` convention unless ``--flops-convention`` says otherwise; cached in ``--flops-cache``),
AP, AP50, AP75, APs, APm, APl, mask AP and the box (/mask) AP difference to the plain ResNet row and
to the SE-ResNet row of the same detector, depth, dataset and schedule. APs are COCO mAP x 100.

``--update-readme configs/README.md`` fills the "ours box AP | ours mask AP" columns of the table in
that file: rows are matched by the config file name in their link; rows without a (finished) result
are left as they are. ``--figure results.png`` draws AP against parameters, bubble area = GFLOPs, one
colour per backbone, one panel per detector (the style of SA-Net's Fig. 1).

A run whose last evaluation is before the config's last epoch is reported as unfinished and left out
of the README update (``--allow-partial`` keeps it).

Examples::

    python tools/analysis_tools/collect_results.py work_dirs --flops compute --out results.md \
        --figure results.png --update-readme configs/README.md
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')
BOX_METRICS = OrderedDict([('AP', 'bbox_mAP'), ('AP50', 'bbox_mAP_50'), ('AP75', 'bbox_mAP_75'),
                           ('APs', 'bbox_mAP_s'), ('APm', 'bbox_mAP_m'), ('APl', 'bbox_mAP_l')])
MASK_METRICS = OrderedDict([('mask AP', 'segm_mAP'), ('mask AP50', 'segm_mAP_50'), ('mask AP75', 'segm_mAP_75')])
DETECTOR_ORDER = ('FasterRCNN', 'RetinaNet', 'MaskRCNN')
BACKBONE_ORDER = ('ResNet', 'SEResNet', 'ECAResNet', 'SAResNet', 'CBAMResNet', 'SGEResNet', 'EPSANet')
BACKBONE_LABELS = {'ResNet': 'ResNet', 'SEResNet': 'SE', 'ECAResNet': 'ECA', 'SAResNet': 'SA', 'CBAMResNet': 'CBAM',
                   'SGEResNet': 'SGE', 'EPSANet': 'EPSANet'}
DETECTOR_LABELS = {'FasterRCNN': 'Faster R-CNN', 'MaskRCNN': 'Mask R-CNN', 'RetinaNet': 'RetinaNet'}
COLOURS = {'ResNet': '#7f7f7f', 'SEResNet': '#1f77b4', 'ECAResNet': '#2ca02c', 'SAResNet': '#d62728',
           'CBAMResNet': '#9467bd', 'SGEResNet': '#ff7f0e', 'EPSANet': '#8c564b'}


# ----------------------------------------------------------------------------- reading work dirs
def read_json_lines(path: str) -> List[dict]:
    """Records of a JSON-lines file (a single JSON document is accepted too); broken lines skipped."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
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
            continue  # a line cut off by a crash
        if isinstance(obj, dict):
            records.append(obj)
    return records


def _metric_prefix(record: dict) -> Optional[str]:
    for key, value in record.items():
        if key.endswith('bbox_mAP') and isinstance(value, (int, float)):
            return key[:-len('bbox_mAP')]
    return None


def extract_metrics(record: dict) -> Optional[Dict[str, float]]:
    """``{'AP': 37.4, 'AP50': ..., 'mask AP': ...}`` (x100) from a log record, or None without box AP."""
    prefix = _metric_prefix(record)
    if prefix is None:
        return None
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


def evaluations(work_dir: str) -> List[dict]:
    """Every evaluation of ``work_dir``: dicts with run, kind ('val'/'test'), step, metrics."""
    evals = []
    for run in sorted(d for d in os.listdir(work_dir) if TIMESTAMP.match(d)):
        run_dir = osp.join(work_dir, run)
        scalars = osp.join(run_dir, 'vis_data', 'scalars.json')
        if not osp.isfile(scalars):  # older layouts: only vis_data/<run>.json
            scalars = osp.join(run_dir, 'vis_data', f'{run}.json')
        if osp.isfile(scalars):
            for i, rec in enumerate(read_json_lines(scalars)):
                metrics = extract_metrics(rec)
                if metrics:
                    evals.append(dict(run=run, kind='val', step=rec.get('step'), order=i, metrics=metrics))
        test_json = osp.join(run_dir, f'{run}.json')
        if osp.isfile(test_json):
            for i, rec in enumerate(read_json_lines(test_json)):
                metrics = extract_metrics(rec)
                if metrics:
                    evals.append(dict(run=run, kind='test', step=None, order=i, metrics=metrics))
    return evals


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
    return dict(detector=str(model.get('type', '?')).split('.')[-1],
                backbone=str(backbone.get('type', '?')).split('.')[-1], depth=backbone.get('depth'),
                dataset=dataset_name, max_epochs=train_cfg.get('max_epochs'))


def collect(roots: Sequence[str], select: str = 'last', allow_partial: bool = False) -> List[dict]:
    """One result per config name (the newest work dir wins). Unfinished runs are marked."""
    results: Dict[str, dict] = OrderedDict()
    for work_dir in find_work_dirs(roots):
        evals = evaluations(work_dir)
        cfg_path = dumped_config(work_dir)
        if not evals or cfg_path is None:
            print(f'skip {work_dir}: ' + ('no evaluation results' if not evals else 'no dumped config'),
                  file=sys.stderr)
            continue
        tests = [e for e in evals if e['kind'] == 'test']
        if select == 'best':
            chosen = max(evals, key=lambda e: e['metrics'].get('AP', -1))
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
        if chosen['kind'] == 'val' and info['max_epochs'] and isinstance(chosen['step'], int):
            finished = chosen['step'] >= info['max_epochs']
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
            print(f'note: {r["name"]} is unfinished ({r["evaluated"]} of {r["max_epochs"]} epochs)'
                  + ('' if allow_partial else '; it is not written to the README'), file=sys.stderr)
    return sorted(out, key=sort_key)


def sort_key(r: dict):
    det = DETECTOR_ORDER.index(r['detector']) if r['detector'] in DETECTOR_ORDER else len(DETECTOR_ORDER)
    bb = BACKBONE_ORDER.index(r['backbone']) if r['backbone'] in BACKBONE_ORDER else len(BACKBONE_ORDER)
    return (r['dataset'], r['max_epochs'] or 0, det, r['detector'], r['depth'] or 0, bb, r['name'])


# ----------------------------------------------------------------------------- complexity
def _get_flops_module():
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    try:
        import get_flops
    finally:
        sys.path.pop(0)
    return get_flops


def attach_complexity(results: List[dict], mode: str, convention: str, shape, proposals: int,
                      flops_json: Optional[str] = None, cache: Optional[str] = None) -> None:
    """Set ``params`` and ``gflops`` of each result from get_flops records (computed or read)."""
    records: Dict[str, dict] = {}
    for path in [p for p in (flops_json, cache) if p and osp.isfile(p)]:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        for rec in data.get('detectors', data if isinstance(data, list) else []):
            if 'error' not in rec and list(rec.get('shape', [])) == list(shape):
                records.setdefault(rec['name'], rec)
    changed = False
    for r in results:
        rec = records.get(r['name'])
        if rec is None and mode == 'compute':
            get_flops = _get_flops_module()
            try:
                rec = get_flops.complexity_of_config(r['config'], tuple(shape), proposals)
            except Exception as err:
                print(f'warning: no complexity for {r["name"]}: {type(err).__name__}: {err}', file=sys.stderr)
                continue
            rec['name'] = r['name']
            records[r['name']] = rec
            changed = True
        if rec is not None:
            r['params'] = rec['params']
            r['gflops'] = rec['flops'][convention] / 1e9
    if changed and cache:
        with open(cache, 'w', encoding='utf-8') as f:
            json.dump(dict(detectors=list(records.values())), f, indent=1)


# ----------------------------------------------------------------------------- table
def _group(r: dict):
    return (r['detector'], r['depth'], r['dataset'], r['max_epochs'])


def reference_row(results: Sequence[dict], r: dict, backbone: str) -> Optional[dict]:
    for other in results:
        if other['backbone'] == backbone and _group(other) == _group(r):
            return other
    return None


def _delta(r: dict, ref: Optional[dict]) -> str:
    if ref is None or ref is r or ref['backbone'] == r['backbone']:
        return '–'
    parts = []
    for key in ('AP', 'mask AP'):
        if key in r['metrics'] and key in ref['metrics']:
            parts.append(f'{r["metrics"][key] - ref["metrics"][key]:+.1f}')
    return ' / '.join(parts) if parts else '–'


def _fmt(value, digits=1) -> str:
    return '–' if value is None else f'{value:.{digits}f}'


def results_table(results: Sequence[dict], convention: str = 'full') -> str:
    head = ['detector', 'backbone', 'config', 'evaluated', 'params (M)', f'GFLOPs ({convention})'] + \
        list(BOX_METRICS) + ['mask AP', 'Δ vs ResNet (box / mask)', 'Δ vs SE (box / mask)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '|'.join(['---'] * len(head)) + '|']
    for r in results:
        label = BACKBONE_LABELS.get(r['backbone'], r['backbone'])
        backbone = f'{label}-{r["depth"]}' if r['backbone'] != 'ResNet' else f'ResNet-{r["depth"]}'
        cells = [DETECTOR_LABELS.get(r['detector'], r['detector']), backbone, r['name'],
                 r['evaluated'] + ('' if r['finished'] else ' (unfinished)'),
                 _fmt(r['params'] / 1e6, 2) if r.get('params') else '–', _fmt(r.get('gflops'), 2)]
        cells += [_fmt(r['metrics'].get(k)) for k in BOX_METRICS]
        cells += [_fmt(r['metrics'].get('mask AP'))]
        cells += [_delta(r, reference_row(results, r, 'ResNet')), _delta(r, reference_row(results, r, 'SEResNet'))]
        lines.append('| ' + ' | '.join(cells) + ' |')
    groups = sorted({(r['dataset'], r['max_epochs']) for r in results}, key=str)
    lines.append('')
    lines.append('APs are COCO mAP x 100 on the evaluation set of each run; Δ rows compare with the ResNet / '
                 'SE-ResNet row of the same detector, depth, dataset and epochs. Datasets/epochs present: '
                 + ', '.join(f'{d} ({e} epochs)' for d, e in groups) + '.')
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- README update
def _split_row(line: str) -> List[str]:
    body = line.strip()
    assert body.startswith('|') and body.endswith('|')
    return [c.strip() for c in body[1:-1].split('|')]


def update_readme(path: str, results: Sequence[dict], allow_partial: bool = False) -> List[str]:
    """Fill the 'ours box AP' / 'ours mask AP' cells of rows whose linked config has a result.

    Returns the names of the updated rows. Only those two cells of those rows change.
    """
    by_name = {r['name']: r for r in results if r['finished'] or allow_partial}
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    box_col = mask_col = None
    updated = []
    for i, line in enumerate(lines):
        if not line.strip().startswith('|'):
            box_col = mask_col = None  # a table ended
            continue
        cells = _split_row(line)
        if 'ours box AP' in cells:
            box_col = cells.index('ours box AP')
            mask_col = cells.index('ours mask AP') if 'ours mask AP' in cells else None
            continue
        if box_col is None or set(''.join(cells)) <= set('-: '):
            continue
        links = re.findall(r'\]\(([^)]+\.py)\)', line)
        if not links:
            continue
        name = osp.splitext(osp.basename(links[0]))[0]
        r = by_name.get(name)
        if r is None:
            continue
        cells[box_col] = _fmt(r['metrics'].get('AP'))
        if mask_col is not None:
            cells[mask_col] = _fmt(r['metrics'].get('mask AP'))
        lines[i] = '| ' + ' | '.join(cells) + ' |'
        updated.append(name)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
    return updated


# ----------------------------------------------------------------------------- figure
def draw_figure(results: Sequence[dict], path: str, convention: str = 'full') -> None:
    """AP vs parameters, bubble area proportional to GFLOPs, one colour per backbone, a panel per
    detector (dataset/epoch groups get their own panels)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    rows = [r for r in results if r.get('params')]
    if not rows:
        raise ValueError('no result has a parameter count: run with --flops compute or --flops-json')
    panels = OrderedDict()
    for r in rows:
        panels.setdefault((r['detector'], r['dataset'], r['max_epochs']), []).append(r)
    n = len(panels)
    cols = min(3, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.4 * nrows), squeeze=False)
    gmax = max((r.get('gflops') or 0) for r in rows) or 1.0
    for ax, ((det, dataset, epochs), items) in zip(axes.flat, panels.items()):
        labels = [f'{BACKBONE_LABELS.get(r["backbone"], r["backbone"])}-{r["depth"]}' for r in items]
        for r, label in zip(items, labels):
            x, y = r['params'] / 1e6, r['metrics']['AP']
            size = 900.0 * (r['gflops'] / gmax) if r.get('gflops') else 120.0
            ax.scatter([x], [y], s=size, color=COLOURS.get(r['backbone'], '#17becf'), alpha=0.55,
                       edgecolors='black', linewidths=0.6, zorder=2)
            if labels.count(label) > 1:  # several runs of one backbone: name them by config
                label = r['name']
            ax.annotate(label, (x, y), textcoords='offset points', xytext=(7, 5), fontsize=8, zorder=3)
        xs = [r['params'] / 1e6 for r in items]
        ys = [r['metrics']['AP'] for r in items]
        xpad = max(0.5, 0.12 * (max(xs) - min(xs)))
        ypad = max(0.3, 0.15 * (max(ys) - min(ys)))
        ax.set_xlim(min(xs) - xpad, max(xs) + 2.5 * xpad)
        ax.set_ylim(min(ys) - ypad, max(ys) + 1.5 * ypad)
        title = DETECTOR_LABELS.get(det, det)
        if not dataset.startswith('CocoDataset (data/coco') or len({(d, e) for _, d, e in panels}) > 1:
            title += f' ({dataset}, {epochs} ep)'
        ax.set_title(title)
        ax.set_xlabel('parameters (M)')
        ax.set_ylabel('box AP')
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis('off')
    present = [b for b in BACKBONE_ORDER if any(r['backbone'] == b for r in rows)]
    present += sorted({r['backbone'] for r in rows} - set(present))
    handles = [Line2D([], [], marker='o', linestyle='', markersize=9, color=COLOURS.get(b, '#17becf'),
                      alpha=0.7, label=BACKBONE_LABELS.get(b, b)) for b in present]
    has_flops = any(r.get('gflops') for r in rows)
    fig.legend(handles=handles, loc='lower center', ncol=len(handles), frameon=False,
               title=(f'bubble area ∝ GFLOPs ({convention} count)' if has_flops else 'GFLOPs not computed'))
    fig.tight_layout(rect=(0, 0.1 if nrows == 1 else 0.06, 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)


# ----------------------------------------------------------------------------- CLI
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Collect COCO results of finished work_dirs into a table',
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('Examples::')[-1])
    parser.add_argument('roots', nargs='*', default=['work_dirs'], help='work dir roots (default: work_dirs)')
    parser.add_argument('--select', choices=('last', 'best'), default='last',
                        help='which evaluation of a run: newest test, else last val (default) / best box AP')
    parser.add_argument('--flops', choices=('none', 'compute'), default='none',
                        help='compute params/GFLOPs with get_flops.py for runs missing from --flops-json/cache')
    parser.add_argument('--flops-json', help='records written by get_flops.py --json')
    parser.add_argument('--flops-cache', help='JSON cache of computed complexity (default: <first root>/'
                        'complexity_cache.json when --flops compute)')
    parser.add_argument('--flops-convention', choices=('full', 'mmdet', 'mmcv1'), default='full')
    parser.add_argument('--flops-shape', type=int, nargs=2, default=(1280, 800), metavar=('H', 'W'))
    parser.add_argument('--proposals', type=int, default=1000)
    parser.add_argument('--out', help='write the markdown table here too')
    parser.add_argument('--figure', help='write the AP-vs-params bubble figure (PNG) here')
    parser.add_argument('--update-readme', metavar='README', help="fill the 'ours' columns of this README")
    parser.add_argument('--allow-partial', action='store_true', help='also write unfinished runs to the README')
    parser.add_argument('--json', help='write the collected results as JSON')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    results = collect(args.roots, args.select, args.allow_partial)
    if not results:
        print(f'no finished evaluation found under {args.roots}', file=sys.stderr)
        return 1
    cache = args.flops_cache
    if cache is None and args.flops == 'compute':
        cache = osp.join(args.roots[0], 'complexity_cache.json')
    if args.flops == 'compute' or args.flops_json or (cache and osp.isfile(cache)):
        attach_complexity(results, args.flops, args.flops_convention, tuple(args.flops_shape), args.proposals,
                          args.flops_json, cache)
    table = results_table(results, args.flops_convention)
    print(table)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(table + '\n')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=1)
    if args.figure:
        draw_figure(results, args.figure, args.flops_convention)
        print(f'figure: {args.figure}', file=sys.stderr)
    if args.update_readme:
        updated = update_readme(args.update_readme, results, args.allow_partial)
        print(f'{args.update_readme}: filled {len(updated)} rows' + (f' ({", ".join(updated)})' if updated else ''),
              file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
