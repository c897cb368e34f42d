#!/usr/bin/env python
"""Convert an official ImageNet checkpoint (ECA, SA, CBAM, SGE, EPSANet, SE, torchvision ResNet) into
an mmattn backbone checkpoint.

The architecture, depth and shape-changing hyper-parameters are read from the keys
and shapes (see :mod:`mmattn.converters.official`); ``--arch``/``--depth`` only assert what you
expect. The converted weights must fill the built backbone exactly (strict load).

Usage::

    python tools/model_converters/official2mmattn.py eca_resnet50_k3557.pth.tar \
        checkpoints/eca_resnet50_k3557_mmattn.pth
"""
import sys

from mmattn.converters.common import converter_parser, load_source, run_converter
from mmattn.converters.official import ARCHS, convert


def parse_args(argv=None):
    parser = converter_parser(__doc__.split('\n\n')[0], 'official checkpoint (.pth / .pth.tar)')
    parser.add_argument('--arch', choices=ARCHS, help='expected official layout (default: detected)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return run_converter('official2mmattn', args, load_source,
                         lambda obj: convert(obj, args.arch, args.depth, args.ema, source_name=args.src))


if __name__ == '__main__':
    sys.exit(main())
