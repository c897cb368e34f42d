#!/usr/bin/env python
"""Collect the COCO (and segmentation mIoU) results of finished work dirs: a table, a figure, and the
metafiles' ``Results``.

Every folder under the given roots that holds mmengine run folders is read (the newest
``tools/test.py`` result, else the last validation; see :mod:`mmattn.analysis.work_dirs`). Rows are
detector x backbone with params / GFLOPs (``--flops compute`` or ``get_flops.py --json`` records),
box and mask AP (x100) and the differences to the ResNet and SE-ResNet rows of the same detector, depth,
dataset and schedule. Segmentation runs (MMSegmentation configs) get their own table: mIoU, mAcc
and aAcc, params / GFLOPs at the training crop, and the mIoU differences to the ResNet and SE-ResNet
rows of the same decode head. ``--update-metafiles`` writes each finished result into the ``Results`` of the
model of the same name in ``configs/*/metafile.yml`` (via ``model-index.yml``).

Examples::

    python tools/analysis_tools/collect_results.py work_dirs --flops compute --out results.md \
        --figure results.png --update-metafiles
"""
import argparse
import json
import os.path as osp
import sys

from mmattn.analysis.results import attach_complexity, draw_figure, metafile_results, results_table
from mmattn.analysis.work_dirs import collect


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('Examples::')[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('roots', nargs='*', default=['work_dirs'], help='work dir roots (default: work_dirs)')
    parser.add_argument('--select', choices=('last', 'best'), default='last',
                        help='newest test, else last val (default), or the best box AP of a run')
    parser.add_argument('--flops', choices=('none', 'compute'), default='none',
                        help='compute params/GFLOPs for runs missing from --flops-json / the cache')
    parser.add_argument('--flops-json', help='records written by get_flops.py --json')
    parser.add_argument('--flops-cache', help='cache of computed complexity (default with --flops compute: '
                        '<first root>/complexity_cache.json)')
    parser.add_argument('--flops-convention', choices=('full', 'mmdet'), default='full')
    parser.add_argument('--flops-shape', type=int, nargs=2, default=(1280, 800), metavar=('H', 'W'))
    parser.add_argument('--proposals', type=int, default=1000)
    parser.add_argument('--out', help='write the markdown table here too')
    parser.add_argument('--figure', help='write the AP-vs-params bubble figure (PNG) here')
    parser.add_argument('--update-metafiles', nargs='?', const='model-index.yml', metavar='MODEL_INDEX',
                        help='write finished results into the metafiles of this model index')
    parser.add_argument('--allow-partial', action='store_true', help='also write unfinished runs')
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
    if args.update_metafiles:
        from mmattn.analysis.metafile import set_results
        for r in results:
            if not (r['finished'] or args.allow_partial):
                continue
            try:
                path = set_results(r['name'], metafile_results(r), args.update_metafiles)
            except KeyError as err:
                print(f'not written: {err.args[0]}', file=sys.stderr)
                continue
            print(f'{path}: Results of {r["name"]}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
