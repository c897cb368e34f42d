"""Draw what the attention layers of a backbone compute on some images.

Examples::

    # a detection (or segmentation) config, with or without its trained checkpoint
    python tools/visualization/vis_attention.py CONFIG [CHECKPOINT] IMAGE... --out-dir DIR
    # a bare backbone with default widths: random weights, or --checkpoint (ImageNet, mmattn layout)
    python tools/visualization/vis_attention.py --backbone SAResNet IMAGE... --out-dir DIR
    # several models, one figure per image with a row per model
    python tools/visualization/vis_attention.py IMAGE... --compare SEResNet CONFIG=CHECKPOINT ... --out-dir DIR

See docs/visualization.md for the files written.
"""
import argparse

from mmengine.config import DictAction

from mmattn.visualization.loading import is_checkpoint_path, split_model_arg


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the spatial gates, channel gates and stage outputs of an attention backbone '
        '(per stage, overlaid on the image) and compare backbones side by side.')
    parser.add_argument('inputs', nargs='+', metavar='CONFIG [CHECKPOINT] IMAGE',
                        help='a config (.py), optionally its checkpoint, then images; with --backbone or '
                        '--compare: images only')
    parser.add_argument('--out-dir', required=True, help='where the figures go')
    parser.add_argument('--backbone', help='a registered backbone name (e.g. SAResNet) instead of a config')
    parser.add_argument('--checkpoint', help='weights for --backbone (or for the config)')
    parser.add_argument('--depth', type=int, default=50, help='depth of --backbone / --compare names (default 50)')
    parser.add_argument('--compare', nargs='+', metavar='CONFIG_OR_BACKBONE[=CHECKPOINT]',
                        help='several models, each a config or a backbone name, optionally =CHECKPOINT; '
                        'writes one figure per image with a row per model')
    parser.add_argument('--seed', type=int, default=0, help='seed of random weights (default 0)')
    parser.add_argument('--size', type=int, default=224, help='longer image side in pixels (default 224)')
    parser.add_argument('--stages', type=int, nargs='+', help='stages to draw, from 1 (default all)')
    parser.add_argument('--blocks', nargs='+', help='blocks to draw, as in the state dict: layer3.5 ...')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config settings (mmengine DictAction), e.g. model.backbone.init_cfg=None')
    return parser, parser.parse_args(argv)


def resolve(parser, args):
    """(list of (source, checkpoint), images) from the command line; a wrong combination fails here."""
    if args.backbone and args.compare:
        parser.error('give either --backbone NAME or --compare ..., not both')
    if args.backbone or args.compare:
        images = list(args.inputs)
        if args.compare:
            if args.checkpoint:
                parser.error('--checkpoint applies to one model; with --compare write NAME_OR_CONFIG=CHECKPOINT')
            sources = [split_model_arg(item) for item in args.compare]
        else:
            sources = [(args.backbone, args.checkpoint)]
    else:
        config, rest = args.inputs[0], list(args.inputs[1:])
        if not config.endswith('.py'):
            parser.error(f'first argument {config!r} is not a config (.py); for a bare backbone use --backbone '
                         'NAME, for several models --compare')
        checkpoint = args.checkpoint
        if rest and is_checkpoint_path(rest[0]):
            if checkpoint:
                parser.error(f'two checkpoints: {rest[0]!r} and --checkpoint {checkpoint!r}')
            checkpoint = rest.pop(0)
        sources, images = [(config, checkpoint)], rest
    if not images:
        parser.error('no image given')
    bad = [path for path in images if is_checkpoint_path(path) or path.endswith('.py')]
    if bad:
        parser.error(f'{bad} are not images: a config/checkpoint goes first (CONFIG [CHECKPOINT] IMAGE...), '
                     'or in --compare')
    return sources, images


def main(argv=None):
    parser, args = parse_args(argv)
    sources, images = resolve(parser, args)
    from mmattn.visualization import build_model, visualize_attention
    from mmattn.visualization.loading import RANDOM_WEIGHTS
    models = [build_model(source, checkpoint, args.depth, args.cfg_options, args.seed)
              for source, checkpoint in sources]
    for model in models:
        print(f'{model.label}: {model.weights}')
    if any(model.weights == RANDOM_WEIGHTS for model in models):
        print('note: random weights show the gates as initialised (SA, SGE and CBAM\'s spatial gate start '
              'constant), not learnt ones; pass a checkpoint to see trained attention')
    results = visualize_attention(models, images, args.out_dir, size=args.size, stages=args.stages,
                                  blocks=args.blocks)
    for result in results:
        for label, model_result in result.models.items():
            print(f'{result.image} {label}: {len(model_result.files)} files in {model_result.out_dir}')
        if result.compare:
            print(f'{result.image} comparison: {result.compare}')


if __name__ == '__main__':
    main()
