#!/usr/bin/env python
"""Convert a timm ResNet-family checkpoint (``seresnet50``, ``seresnet101``, ``resnet50`` ...) into an
mmattn backbone checkpoint.

Key mapping and the layouts that are refused (with the reason): :mod:`mmattn.converters.timm`.

Usage::

    python tools/model_converters/timm2mmattn.py seresnet50.pth checkpoints/seresnet50_timm_mmattn.pth
"""
import sys

from mmattn.converters.common import converter_parser, run_converter
from mmattn.converters.timm import convert, load_timm_file


def parse_args(argv=None):
    return converter_parser(__doc__.split('\n\n')[0], 'timm checkpoint (.pth / .bin of model.state_dict(), '
                            'or a timm train checkpoint with state_dict / state_dict_ema)').parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return run_converter('timm2mmattn', args, load_timm_file,
                         lambda obj: convert(obj, args.depth, args.ema, source_name=args.src))


if __name__ == '__main__':
    sys.exit(main())
