"""Summarize every mmattn backbone: depth, parameters and output shapes.

Example::

    python tools/analysis_tools/backbone_summary.py --input-size 64
    python tools/analysis_tools/backbone_summary.py --depth 101 --json out.json
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import torch

try:
    import mmattn  # noqa: F401
except ImportError:  # a source checkout that is not pip-installed
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..',
                                            '..')))

# Extra arguments for backbones that cannot be built from ``depth`` alone,
# and how the table shows them.
DEFAULT_KWARGS: Dict[str, dict] = {
    'AttentionResNet': dict(attention=dict(type='SE')),
}
LABELS: Dict[str, str] = {'AttentionResNet': 'AttentionResNet (SE)'}
# The plain mmdet ResNet, listed first as the reference.
REFERENCE = 'ResNet'


def list_backbones() -> List[str]:
    """Names of the backbones that ``import mmattn.models`` registers."""
    import mmattn.models  # noqa: F401
    from mmdet.registry import MODELS
    prefix = 'mmattn.models.backbones'
    return sorted(
        name for name, cls in MODELS.module_dict.items()
        if getattr(cls, '__module__', '').startswith(prefix))


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def summarize_backbones(names: Optional[Sequence[str]] = None,
                        depth: int = 50,
                        input_size: int = 64,
                        with_reference: bool = True) -> List[dict]:
    """Build each backbone, count parameters and run a forward pass.

    Args:
        names (Sequence[str], optional): Backbone types; all mmattn
            backbones by default.
        depth (int): The depth passed to every backbone.
        input_size (int): Height and width of the random input (batch 1).
        with_reference (bool): Also list mmdet's plain ``ResNet``.

    Returns:
        list[dict]: One row per backbone with ``name``, ``label`` (the
        name shown in the table), ``depth``,
        ``params`` (int), ``out_shapes`` (list of ``[C, H, W]``) and
        ``error`` (str or None; set if the backbone could not be built or
        run).
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    # Plugins (the attention layers) are looked up in the default scope.
    init_default_scope('mmdet')
    if names is None:
        names = list_backbones()
        if with_reference:
            names = [REFERENCE] + names
    rows = []
    torch.manual_seed(0)
    inputs = torch.rand(1, 3, input_size, input_size)
    for name in names:
        row = dict(
            name=name,
            label=LABELS.get(name, name),
            depth=depth,
            params=None,
            out_shapes=None,
            error=None)
        cfg = dict(type=name, depth=depth, **DEFAULT_KWARGS.get(name, {}))
        try:
            model = MODELS.build(cfg)
            model.eval()
            with torch.no_grad():
                outs = model(inputs)
            row['params'] = count_params(model)
            row['out_shapes'] = [list(out.shape[1:]) for out in outs]
        except Exception as e:  # report, do not stop the summary
            row['error'] = f'{type(e).__name__}: {e}'
        rows.append(row)
    return rows


def format_table(rows: List[dict], input_size: int) -> str:
    """The rows of :func:`summarize_backbones` as a text table."""
    header = ('backbone', 'depth', 'params (M)',
              f'output shapes (C x H x W) for a {input_size}x{input_size} '
              'input')
    lines = []
    for row in rows:
        if row['error'] is None:
            params = f'{row["params"] / 1e6:.2f}'
            shapes = ', '.join('x'.join(map(str, s))
                               for s in row['out_shapes'])
        else:
            params, shapes = '-', f'error: {row["error"]}'
        lines.append((row['label'], str(row['depth']), params, shapes))
    widths = [
        max(len(header[i]), *(len(line[i]) for line in lines))
        for i in range(3)
    ]
    fmt = '  '.join(f'{{:<{w}}}' for w in widths) + '  {}'
    out = [fmt.format(*header), fmt.format(*('-' * w for w in widths),
                                           '-' * len(header[3]))]
    out.extend(fmt.format(*line) for line in lines)
    return '\n'.join(out)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Parameters and output shapes of the mmattn backbones')
    parser.add_argument(
        '--backbones',
        nargs='+',
        help='backbone types to summarize (default: all mmattn backbones)')
    parser.add_argument(
        '--depth', type=int, default=50, help='depth of every backbone')
    parser.add_argument(
        '--input-size',
        type=int,
        default=64,
        help='height and width of the random input')
    parser.add_argument(
        '--no-reference',
        action='store_true',
        help='do not list the plain mmdet ResNet')
    parser.add_argument('--json', help='also write the rows to this file')
    return parser.parse_args()


def main():
    args = parse_args()
    rows = summarize_backbones(
        args.backbones,
        depth=args.depth,
        input_size=args.input_size,
        with_reference=not args.no_reference)
    print(format_table(rows, args.input_size))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    if any(row['error'] for row in rows):
        sys.exit(1)


if __name__ == '__main__':
    main()
