"""Every backbone at a glance: parameters and output shapes of one forward pass."""
from typing import List, Optional, Sequence

import torch

from .build import build_backbone, count_params
from .names import backbone_label, backbone_types


def summarize_backbones(names: Optional[Sequence[str]] = None, depth: int = 50, input_size: int = 64,
                        with_reference: bool = True) -> List[dict]:
    """Build each backbone (all of :func:`~mmattn.analysis.names.backbone_types` for None or ``['all']``,
    as in the other tools), count its parameters and run a ``1 x 3 x input_size x input_size`` input
    through it.

    Returns one row per backbone: ``name``, ``label``, ``depth``, ``params``, ``out_shapes`` (``[C, H,
    W]`` per output) and ``error`` (None, or why the backbone could not be built or run).
    """
    if names is None or list(names) == ['all']:
        names = backbone_types(with_reference)
    torch.manual_seed(0)
    inputs = torch.rand(1, 3, input_size, input_size)
    rows = []
    for name in names:
        row = dict(name=name, label=backbone_label(name), depth=depth, params=None, out_shapes=None, error=None)
        try:
            model, _, _ = build_backbone(dict(type=name, depth=depth))
            with torch.no_grad():
                outs = model(inputs)
            row.update(params=count_params(model), out_shapes=[list(out.shape[1:]) for out in outs])
        except Exception as e:  # report it in the table, do not stop the summary
            row['error'] = f'{type(e).__name__}: {e}'
        rows.append(row)
    return rows


def format_table(rows: List[dict], input_size: int) -> str:
    """The rows of :func:`summarize_backbones` as a text table."""
    header = ('backbone', 'depth', 'params (M)', f'output shapes (C x H x W) for a {input_size}x{input_size} input')
    lines = []
    for row in rows:
        if row['error'] is None:
            cells = (f'{row["params"] / 1e6:.2f}', ', '.join('x'.join(map(str, s)) for s in row['out_shapes']))
        else:
            cells = ('-', f'error: {row["error"]}')
        lines.append((row['label'], str(row['depth'])) + cells)
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) for i in range(3)]
    fmt = '  '.join(f'{{:<{w}}}' for w in widths) + '  {}'
    out = [fmt.format(*header), fmt.format(*('-' * w for w in widths), '-' * len(header[3]))]
    out.extend(fmt.format(*line) for line in lines)
    return '\n'.join(out)
