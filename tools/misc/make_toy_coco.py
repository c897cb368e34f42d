"""Generate the synthetic toy COCO dataset used by the quick-start configs.

Example::

    python tools/misc/make_toy_coco.py --out data/toy_coco \
        --num-train 600 --num-val 100 --size 128 --seed 0
"""
import argparse
import sys

from mmattn.datasets.toy_coco import generate_toy_coco, summarize


def parse_args():
    parser = argparse.ArgumentParser(
        description='Generate a synthetic COCO-format instance segmentation '
        'dataset of circles, rectangles and triangles')
    parser.add_argument(
        '--out', default='data/toy_coco', help='output root directory')
    parser.add_argument(
        '--num-train', type=int, default=600, help='number of train images')
    parser.add_argument(
        '--num-val', type=int, default=100, help='number of val images')
    parser.add_argument(
        '--size', type=int, default=128, help='image width and height')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--max-objects',
        type=int,
        default=4,
        help='maximum number of shapes per image')
    parser.add_argument(
        '--force',
        action='store_true',
        help='regenerate even if consistent data already exists')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        result = generate_toy_coco(
            args.out,
            num_train=args.num_train,
            num_val=args.num_val,
            size=args.size,
            seed=args.seed,
            max_objects=args.max_objects,
            force=args.force,
            verbose=True)
    except ValueError as e:
        sys.exit(f'make_toy_coco.py: error: {e}')
    print(summarize([result['train'], result['val']]))


if __name__ == '__main__':
    main()
