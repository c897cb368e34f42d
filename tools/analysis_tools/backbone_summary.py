#!/usr/bin/env python
"""Every mmattn backbone (and mmdet's ResNet): parameters and output shapes of one forward pass.

Examples::

    python tools/analysis_tools/backbone_summary.py --input-size 64
    python tools/analysis_tools/backbone_summary.py --backbones SAResNet --depth 101 --json out.json
"""
import argparse
import json
import sys

from mmattn.analysis.summary import format_table, summarize_backbones


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--backbones', nargs='+', help="registry types; 'all' (the default) = every mmattn backbone")
    parser.add_argument('--depth', type=int, default=50, help='depth of every backbone')
    parser.add_argument('--input-size', type=int, default=64, help='height and width of the random input')
    parser.add_argument('--no-reference', action='store_true', help='do not list the plain mmdet ResNet')
    parser.add_argument('--json', help='also write the rows to this file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = summarize_backbones(args.backbones, args.depth, args.input_size, not args.no_reference)
    print(format_table(rows, args.input_size))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    return 1 if any(row['error'] for row in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
