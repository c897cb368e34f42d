"""Generate the synthetic semantic-segmentation dataset of the quick-start
segmentation configs (the toy COCO scenes as label maps, mmseg's layout).

Example::

    python tools/misc/make_toy_seg.py --out data/toy_seg \
        --num-train 600 --num-val 100 --size 128 --seed 0
"""
import argparse
import sys

from mmattn.datasets.toy_coco import add_generator_args, generator_kwargs
from mmattn.datasets.toy_seg import CLASSES, generate_toy_seg


def parse_args():
    parser = argparse.ArgumentParser(
        description='Generate a synthetic semantic-segmentation dataset of '
        'circles, rectangles and triangles (label maps in mmseg\'s '
        'img_dir/ann_dir layout)')
    add_generator_args(parser, default_out='data/toy_seg')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        result = generate_toy_seg(args.out, **generator_kwargs(args))
    except ValueError as e:
        sys.exit(f'make_toy_seg.py: error: {e}')
    for split in ('train', 'val'):
        img_dir, ann_dir = result[split]
        print(f'{split}: images in {img_dir}, label maps in {ann_dir}')
    print('labels: ' + ', '.join(f'{i} = {c}' for i, c in enumerate(CLASSES)))


if __name__ == '__main__':
    main()
