"""Parameters and FLOPs by ``mmengine.analysis.FlopAnalyzer``, plus the operators it does not count.

mmengine counts convolutions, linear layers and matrix products (1 FLOP = 1 multiply-accumulate),
normalisations, upsampling and adaptive average pooling; it ignores ReLU and ``max``, and reports
every other operator as unsupported (mmdet's ``get_flops.py`` then skips it with a warning). Attention
modules are made of exactly those other operators (sigmoid gates, products, global pools,
softmax, statistics), so they would count as free. Two totals are reported:

* ``mmdet``: mmengine's default handles alone, i.e. what mmdet 3.x's ``get_flops.py`` prints;
* ``full``: the same plus :data:`EXTRA_HANDLES` for the operators mmengine has no rule for:
  element-wise arithmetic 1 per output element, reductions 1 per input element (``std``, ``var``
  and ``logsumexp`` 3, norms 2), softmax 3 per element, max pooling ``k*k`` per output, RoIAlign 4 per output (bilinear).

An operator that neither mmengine nor :data:`EXTRA_HANDLES` knows raises
:class:`UnsupportedOpsError` naming it, so an attention operator is never skipped silently.
"""
import math
from collections import Counter
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from .build import (ClassifierWrapper, DetectorWrapper, SegmentorWrapper, backbone_type_depth, build_backbone,
                    build_detector, count_params, is_segmentation, num_classes, read_config,
                    segmentation_shape)

ELEMENTWISE = ('add', 'sub', 'mul', 'div', 'neg', 'sigmoid', 'tanh', 'exp', 'log', 'log2', 'sqrt', 'rsqrt',
               'pow', 'reciprocal', 'maximum', 'minimum')
#: FLOPs per input element
REDUCTIONS = {'mean': 1, 'sum': 1, 'amax': 1, 'amin': 1, 'std': 3, 'var': 3, 'var_mean': 3, 'std_mean': 3,
              'logsumexp': 3, 'norm': 2, 'linalg_vector_norm': 2}
#: operators without FLOPs that mmengine neither counts nor ignores
NO_FLOPS = ('expand_as', 'view_as', 'reshape_as', 'unflatten', 'repeat', 'flip', 'clone', 'channel_shuffle',
            'pixel_shuffle', 'alias', 'lift_fresh', 'lt', 'le', 'ne', 'argmax', 'topk', 'sort',
            # the segmentation heads' Dropout2d, an identity in inference
            'feature_dropout', 'dropout')


def _shape(value):
    from mmengine.analysis.jit_handles import get_shape
    return get_shape(value)


def _numel(value) -> int:
    shape = _shape(value)
    return math.prod(shape) if shape is not None else 0


def _per_output(scale=1):
    return lambda inputs, outputs: scale * _numel(outputs[0])


def _per_input(scale=1):
    return lambda inputs, outputs: scale * _numel(inputs[0])


def _max(inputs, outputs):
    # max(x) / max(x, dim) reduce over their input; max(x, y) is element-wise
    if len(inputs) == 2 and _shape(inputs[1]) is not None:
        return _numel(outputs[0])
    return _numel(inputs[0])


def _max_pool(inputs, outputs):
    kernel = inputs[1].toIValue()
    if kernel is None and inputs[1].node().kind() == 'prim::ListConstruct':
        kernel = [v.toIValue() for v in inputs[1].node().inputs()]
    kernel = [kernel] if isinstance(kernel, int) else list(kernel)
    return _numel(outputs[0]) * math.prod(kernel)


def _extra_handles() -> Dict[str, object]:
    handles = {}
    for name in ELEMENTWISE:
        handles[f'aten::{name}'] = handles[f'aten::{name}_'] = _per_output()
    for name, scale in REDUCTIONS.items():
        handles[f'aten::{name}'] = _per_input(scale)
    handles.update({
        'aten::max': _max,
        'aten::softmax': _per_output(3),
        'aten::_softmax': _per_output(3),
        'aten::max_pool2d': _max_pool,
        'prim::PythonOp.RoIAlignFunction': _per_output(4),
    })
    return handles


#: aten operator -> handle, for the operators mmengine has no rule for (see the module doc)
EXTRA_HANDLES = _extra_handles()


class UnsupportedOpsError(RuntimeError):
    """The trace contains operators that have no counting rule."""


def _simple_name(op: str) -> str:
    return op.split('::')[-1].split('.')[-1]


def analyze(model: nn.Module, inputs: Tuple[torch.Tensor, ...], allow_unsupported: bool = False) -> dict:
    """Trace ``model(*inputs)`` once and count.

    Returns ``dict(params, trainable_params, flops={'full': n, 'mmdet': n}, by_op, uncounted)``;
    ``by_op`` maps operator names to FLOPs (those of :data:`EXTRA_HANDLES` are counted in ``full``
    only).
    """
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**EXTRA_HANDLES)
    analyzer.set_op_handle(**{f'aten::{name}': None for name in NO_FLOPS})
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        by_op = Counter(analyzer.by_operator())
    unsupported = Counter(analyzer.unsupported_ops())
    if unsupported and not allow_unsupported:
        raise UnsupportedOpsError(
            'operators without a counting rule (they would be skipped silently): '
            + ', '.join(f'{op} x{n}' for op, n in unsupported.most_common())
            + '. Add them to EXTRA_HANDLES or NO_FLOPS in mmattn/analysis/complexity.py, or pass '
            '--allow-unsupported to report them as uncounted.')
    extra = {_simple_name(op) for op in EXTRA_HANDLES}
    mmdet = sum(n for op, n in by_op.items() if op not in extra)
    return dict(params=count_params(model), trainable_params=count_params(model, trainable_only=True),
                flops=dict(full=int(sum(by_op.values())), mmdet=int(mmdet)),
                by_op={k: int(v) for k, v in sorted(by_op.items())},
                uncounted={k: int(v) for k, v in unsupported.items()})


def _image(shape: Sequence[int]) -> Tuple[torch.Tensor]:
    return (torch.randn(1, 3, shape[0], shape[1], generator=torch.Generator().manual_seed(0)), )


def detector_inputs(path: str, shape: Optional[Sequence[int]], num_proposals: int = 1000,
                    cfg_options: Optional[dict] = None):
    """``(wrapper, inputs, info)`` for a detector config: the network on one synthetic image. For a
    segmentation config the segmentor's inference network, by default (``shape=None``) at its
    training crop (the size in mmseg's config names, e.g. 512x1024)."""
    cfg = read_config(path, cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'{path} has no model')
    btype, depth = backbone_type_depth(cfg.model)
    if is_segmentation(cfg):
        shape = tuple(shape) if shape else segmentation_shape(cfg)
        wrapper = SegmentorWrapper(build_detector(cfg)).eval()
        info = dict(config=path, name=path.replace('\\', '/').rsplit('/', 1)[-1][:-3],
                    detector=str(cfg.model.decode_head.get('type', '?')).split('.')[-1], backbone=btype,
                    depth=depth, shape=list(shape), proposals=None, num_classes=num_classes(cfg.model),
                    task='seg')
        return wrapper, _image(shape), info
    shape = tuple(shape) if shape else (1280, 800)
    wrapper = DetectorWrapper(build_detector(cfg), shape[0], shape[1], num_proposals).eval()
    info = dict(config=path, name=path.replace('\\', '/').rsplit('/', 1)[-1][:-3],
                detector=str(cfg.model.get('type', '?')).split('.')[-1], backbone=btype, depth=depth,
                shape=list(shape), proposals=num_proposals if wrapper.two_stage else None,
                num_classes=num_classes(cfg.model))
    return wrapper, _image(shape), info


def complexity_of_config(path: str, shape: Optional[Sequence[int]] = (1280, 800), num_proposals: int = 1000,
                         cfg_options: Optional[dict] = None, allow_unsupported: bool = False) -> dict:
    """Complexity record of one detector config (the fields of :func:`analyze` and the model's)."""
    wrapper, inputs, info = detector_inputs(path, shape, num_proposals, cfg_options)
    return dict(analyze(wrapper, inputs, allow_unsupported), **info)


def backbone_inputs(spec: str, shape: Sequence[int] = (224, 224), with_head: bool = False):
    backbone, btype, depth = build_backbone(spec)
    model = ClassifierWrapper(backbone, with_head).eval()
    return model, _image(shape), dict(name=spec, backbone=btype, depth=depth, shape=list(shape),
                                      with_head=with_head)


def complexity_of_backbone(spec: str, shape: Sequence[int] = (224, 224), with_head: bool = False,
                           allow_unsupported: bool = False) -> dict:
    """Complexity record of a backbone ``TYPE-DEPTH`` (with the ImageNet head if ``with_head``)."""
    model, inputs, info = backbone_inputs(spec, shape, with_head)
    return dict(analyze(model, inputs, allow_unsupported), **info)
