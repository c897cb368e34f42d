"""Generate the synthetic toy COCO dataset used by the quick-start configs.

Example::

    python tools/misc/make_toy_coco.py --out data/toy_coco \
        --num-train 600 --num-val 100 --size 128 --seed 0
"""
import argparse
import sys

from mmattn.datasets.toy_coco import (add_generator_args, generate_toy_coco, generator_kwargs,
                                      summarize)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Generate a synthetic COCO-format instance segmentation '
        'dataset of circles, rectangles and triangles')
    add_generator_args(parser, default_out='data/toy_coco')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        result = generate_toy_coco(args.out, **generator_kwargs(args))
    except ValueError as e:
        sys.exit(f'make_toy_coco.py: error: {e}')
    print(summarize([result['train'], result['val']]))


if __name__ == '__main__':
    main()
