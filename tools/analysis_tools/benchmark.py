#!/usr/bin/env python
"""Speed and memory of attention backbones / detectors, as ratios to the plain ResNet of the same depth.

Measures inference and training speed and peak memory of every model, interleaved in rounds, and
reports each as a ratio to the plain ResNet of the same depth measured in the same run; the method is
:mod:`mmattn.analysis.benchmark` and ``docs/speed.md``.

Examples::

    python tools/analysis_tools/benchmark.py --backbones all --depth 50 --batch 8 --size 224
    python tools/analysis_tools/benchmark.py --backbones all --depth 50 --batch 2 --size 800x1333 \
        --repeats 3 --iters 1 --mode infer
    python tools/analysis_tools/benchmark.py --backbones all --depth 50 --compare-channels-last
    python tools/analysis_tools/benchmark.py --configs configs/eca_resnet/faster-rcnn_eca-r50_fpn_1x_coco.py \
        --device cuda --batch 2 --size 800x1333 --amp
"""
import argparse
import json
import sys
import warnings

from mmattn.analysis.benchmark import parse_size, ratio_table, run

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Speed/memory of attention backbones as ratios to ResNet',
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('Examples::')[-1])
    parser.add_argument('--backbones', nargs='+', metavar='TYPE[-DEPTH]',
                        help="backbones, e.g. SEResNet ECAResNet-101; 'all' = every mmattn backbone")
    parser.add_argument('--depth', type=int, default=50, help='depth for backbones given without one (default 50)')
    parser.add_argument('--configs', nargs='+', default=[], help='detector configs')
    parser.add_argument('--mode', choices=('infer', 'train', 'both'), default='both')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=parse_size, default=(224, 224), help="'224' or HxW, e.g. '800x1333'")
    parser.add_argument('--proposals', type=int, default=1000, help='RoIs of two-stage detectors (inference)')
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument('--channels-last', action='store_true', help='every model and input in channels-last')
    layout.add_argument('--compare-channels-last', action='store_true',
                        help='every model both in NCHW and in channels-last, interleaved in the same rounds; '
                        'adds the column "NHWC vs NCHW"')
    parser.add_argument('--amp', action='store_true', help='autocast (fp16 on CUDA, bf16 on CPU)')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (default: torch default)')
    parser.add_argument('--warmup', type=int, default=2, help='warm-up iterations per model and mode')
    parser.add_argument('--iters', type=int, default=3, help='iterations per timing')
    parser.add_argument('--repeats', type=int, default=5, help='interleaved rounds (median reported)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory measurement')
    parser.add_argument('--out', help='also write the markdown table here')
    parser.add_argument('--json', help='also write the raw records as JSON')
    args = parser.parse_args(argv)
    for name in ('batch', 'iters', 'repeats'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    records = run(args)
    table = ratio_table(records, args)
    print(table)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(table + '\n')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(dict(args={k: v for k, v in vars(args).items()}, records=records), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
