#!/usr/bin/env python
"""Convert an mmpretrain (mmcls) SE-ResNet / ResNet ImageNet checkpoint into an mmattn backbone checkpoint.

Key mapping and refused layouts: :mod:`mmattn.converters.mmpretrain`.

Usage::

    python tools/model_converters/mmpretrain2mmattn.py se-resnet50_batch256_imagenet_20200804-ae206104.pth \
        checkpoints/se-resnet50_mmpretrain_mmattn.pth
"""
import sys

from mmattn.converters.common import converter_parser, load_source, run_converter
from mmattn.converters.mmpretrain import convert


def parse_args(argv=None):
    return converter_parser(__doc__.split('\n\n')[0], 'mmpretrain checkpoint (.pth)').parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return run_converter('mmpretrain2mmattn', args, load_source,
                         lambda obj: convert(obj, args.depth, args.ema, source_name=args.src))


if __name__ == '__main__':
    sys.exit(main())
