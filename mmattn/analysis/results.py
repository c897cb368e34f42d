"""Results of finished runs: the comparison table, the AP-vs-parameters figure and the metafile
``Results`` entries (collected by :func:`mmattn.analysis.work_dirs.collect`)."""
import json
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

from .complexity import complexity_of_config
from .names import backbone_label, detector_label
from .names import sort_key as backbone_sort_key
from .work_dirs import BOX_METRICS, SEG_METRICS

def attach_complexity(results: List[dict], mode: str, convention: str, shape, proposals: int,
                      flops_json: Optional[str] = None, cache: Optional[str] = None) -> None:
    """Set ``params`` and ``gflops`` of each result from ``get_flops.py --json`` records (read), or
    computed (``mode='compute'``) and cached in ``cache``."""
    records: Dict[str, dict] = {}
    for path in [p for p in (flops_json, cache) if p and osp.isfile(p)]:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        for rec in data if isinstance(data, list) else data.get('detectors', []):
            # segmentors are counted at their own training crop, not at ``shape``
            if 'flops' in rec and (list(rec.get('shape', [])) == list(shape) or rec.get('task') == 'seg'):
                records.setdefault(rec['name'], rec)
    changed = False
    for r in results:
        rec = records.get(r['name'])
        if rec is None and mode == 'compute':
            try:  # segmentors at their training crop (mmseg's convention), detectors at ``shape``
                rec = complexity_of_config(r['config'], None if r.get('task') == 'seg' else tuple(shape),
                                           proposals)
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
    return (r['detector'], r['depth'], r['dataset'], r['max_epochs'] or r.get('max_iters'))


def reference_row(results: Sequence[dict], r: dict, backbone: str) -> Optional[dict]:
    for other in results:
        if other['backbone'] == backbone and _group(other) == _group(r):
            return other
    return None


def _delta(r: dict, ref: Optional[dict]) -> str:
    if ref is None or ref is r or ref['backbone'] == r['backbone']:
        return '–'
    parts = []
    for key in ('AP', 'mask AP', 'mIoU'):
        if key in r['metrics'] and key in ref['metrics']:
            parts.append(f'{r["metrics"][key] - ref["metrics"][key]:+.1f}')
    return ' / '.join(parts) if parts else '–'


def _fmt(value, digits=1) -> str:
    return '–' if value is None else f'{value:.{digits}f}'


def results_table(results: Sequence[dict], convention: str = 'full') -> str:
    """The detection table, then (if any) the segmentation table with the mIoU columns."""
    det = [r for r in results if r.get('task') != 'seg']
    seg = [r for r in results if r.get('task') == 'seg']
    tables = [_detection_table(det, convention)] if det else []
    if seg:
        tables.append(_segmentation_table(seg, convention))
    return '\n\n'.join(tables)


def _segmentation_table(results: Sequence[dict], convention: str) -> str:
    head = ['segmentor (decode head)', 'backbone', 'config', 'evaluated', 'params (M)',
            f'GFLOPs ({convention}, training crop)'] + list(SEG_METRICS) + ['Δ mIoU vs ResNet', 'Δ mIoU vs SE']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '|'.join(['---'] * len(head)) + '|']
    for r in results:
        cells = [r['detector'], backbone_label(r['backbone'], r['depth']), r['name'],
                 r['evaluated'] + ('' if r['finished'] else ' (unfinished)'),
                 _fmt(r['params'] / 1e6, 2) if r.get('params') else '–', _fmt(r.get('gflops'), 2)]
        cells += [_fmt(r['metrics'].get(k), 2) for k in SEG_METRICS]
        cells += [_delta(r, reference_row(results, r, 'ResNet')), _delta(r, reference_row(results, r, 'SEResNet'))]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append('mIoU, mAcc and aAcc are mmseg\'s IoUMetric (%) on the evaluation set of each run; Δ columns '
                 'compare with the ResNet / SE-ResNet row of the same decode head, depth, dataset and schedule.')
    return '\n'.join(lines)


def _detection_table(results: Sequence[dict], convention: str = 'full') -> str:
    head = ['detector', 'backbone', 'config', 'evaluated', 'params (M)', f'GFLOPs ({convention})'] + \
        list(BOX_METRICS) + ['mask AP', 'Δ vs ResNet (box / mask)', 'Δ vs SE (box / mask)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '|'.join(['---'] * len(head)) + '|']
    for r in results:
        cells = [detector_label(r['detector']), backbone_label(r['backbone'], r['depth']), r['name'],
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


def draw_figure(results: Sequence[dict], path: str, convention: str = 'full') -> None:
    """AP vs parameters, bubble area proportional to GFLOPs, one colour per backbone, a panel per
    detector (dataset/epoch groups get their own panels)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    rows = [r for r in results if r.get('params') and 'AP' in r['metrics']]  # detectors only
    if not rows:
        raise ValueError('no result has a parameter count: run with --flops compute or --flops-json')
    present = sorted({r['backbone'] for r in rows}, key=backbone_sort_key)
    colours = {b: plt.get_cmap('tab10')(i % 10) for i, b in enumerate(present)}
    panels = OrderedDict()
    for r in rows:
        panels.setdefault((r['detector'], r['dataset'], r['max_epochs']), []).append(r)
    n = len(panels)
    cols = min(3, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.4 * nrows), squeeze=False)
    gmax = max((r.get('gflops') or 0) for r in rows) or 1.0
    for ax, ((det, dataset, epochs), items) in zip(axes.flat, panels.items()):
        labels = [backbone_label(r['backbone'], r['depth'], short=True) for r in items]
        for r, label in zip(items, labels):
            x, y = r['params'] / 1e6, r['metrics']['AP']
            size = 900.0 * (r['gflops'] / gmax) if r.get('gflops') else 120.0
            ax.scatter([x], [y], s=size, color=colours[r['backbone']], alpha=0.55,
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
        title = detector_label(det)
        if not dataset.startswith('CocoDataset (data/coco') or len({(d, e) for _, d, e in panels}) > 1:
            title += f' ({dataset}, {epochs} ep)'
        ax.set_title(title)
        ax.set_xlabel('parameters (M)')
        ax.set_ylabel('box AP')
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis('off')
    handles = [Line2D([], [], marker='o', linestyle='', markersize=9, color=colours[b], alpha=0.7,
                      label=backbone_label(b, short=True)) for b in present]
    has_flops = any(r.get('gflops') for r in rows)
    fig.legend(handles=handles, loc='lower center', ncol=len(handles), frameon=False,
               title=(f'bubble area ∝ GFLOPs ({convention} count)' if has_flops else 'GFLOPs not computed'))
    fig.tight_layout(rect=(0, 0.1 if nrows == 1 else 0.06, 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)


def metafile_results(r: dict) -> List[dict]:
    """The ``Results`` entries (OpenMMLab schema) of one collected result."""
    if r.get('task') == 'seg':
        dataset = r['dataset'].split(' ')[0]
        dataset = {'CityscapesDataset': 'Cityscapes', 'ADE20KDataset': 'ADE20K'}.get(dataset, dataset)
        return [dict(Task='Semantic Segmentation', Dataset=dataset,
                     Metrics={k: round(v, 2) for k, v in r['metrics'].items()})]
    box = {k: round(v, 1) for k, v in r['metrics'].items() if not k.startswith('mask')}
    entries = [dict(Task='Object Detection', Dataset='COCO', Metrics={f'box {k}' if k == 'AP' else k: v
                                                                      for k, v in box.items()})]
    mask = {k: round(v, 1) for k, v in r['metrics'].items() if k.startswith('mask')}
    if mask:
        entries.append(dict(Task='Instance Segmentation', Dataset='COCO', Metrics=mask))
    return entries
