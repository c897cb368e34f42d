#!/usr/bin/env python
"""Parameters and FLOPs of mmattn backbones and detectors, with the papers' numbers beside ours.

Two kinds of targets, any number of each in one run:

* **detector configs** (files, folders searched recursively, or globs): the model is built from
  ``cfg.model`` with every ``init_cfg`` switched off (nothing is downloaded, no checkpoint or COCO file
  is needed) and one synthetic ``1 x 3 x H x W`` image (default 1280 x 800, the papers' input) is
  traced. Single-stage detectors run ``extract_feat`` + ``bbox_head.forward`` (mmdet's
  ``_forward``). Two-stage detectors run ``extract_feat``, ``rpn_head.forward`` and
  ``roi_head.forward`` on ``--proposals`` fixed boxes (default 1000; the mask head sees the first 100,
  as ``StandardRoIHead.forward`` does) instead of the RPN's NMS output: this is the convention of
  mmdet v1/v2's ``forward_dummy`` that the papers' numbers come from, and it is deterministic
  (mmdet 3.x's ``get_flops.py`` feeds whatever survives NMS, which depends on the weights).
  The boxes cover all FPN levels, so every RoI level is exercised.
* **backbones** (``--backbones ResNet-50 SEResNet-101 ...`` or ``--backbones all``): the backbone alone
  at 224 x 224 (``--shape``), with ``--with-head`` adding the ImageNet head (global average pool +
  Linear 2048 -> 1000) so the ImageNet tables can be compared.

Counting
--------
The model is traced once with mmengine's :class:`~mmengine.analysis.FlopAnalyzer`, whose default handles
are replaced by handles that count every operator that does arithmetic; data-movement, integer and
comparison operators are explicitly zero (:data:`ZERO_COST_OPS`). **Any other operator stops the tool**
with its name (``--allow-unsupported`` turns this into a warning and an "uncounted" column), so an
attention operator can never be skipped silently. Each handle records raw per-category counts, from
which three conventions are computed (1 FLOP = 1 multiply-accumulate for conv/linear/matmul, as
mmdet, fvcore and mmcv do):

==========================  ====================  =====================  ==============================
operator                    ``full`` (default)    ``mmdet``              ``mmcv1``
==========================  ====================  =====================  ==============================
conv (incl. 1-D, transp.)   MACs + bias adds      MACs                   MACs + bias adds
linear / addmm              MACs + bias adds      MACs                   MACs
matmul / bmm / einsum       MACs                  MACs                   MACs
batch norm (eval)           1/elem, +1 if affine  same                   same
group/instance/layer norm   4/elem, +1 if affine  same                   1/elem, +1 if affine
ReLU                        1/elem                0                      1/elem (nn.ReLU modules only)
max / avg pool (window)     k*k per output        0                      1 per input (nn modules only)
adaptive avg pool           1 per input           1 per input            1 per input (nn modules only)
mean / amax over H, W       1 per input           0                      1 per input
(global pool in attention)
other mean/sum/amax/max     1 per input           0                      0
std / var (_mean) / lse     3 per input           0                      0
softmax                     3/elem                0                      0
element-wise (add, mul,     1/elem of output      0                      0
sigmoid, div, exp, ...)     (addcmul: 2, lerp: 3)
upsample nearest/bilinear   1 / 4 per output      1 / 4 per output       0 (mmdet calls F.interpolate)
RoIAlign (mmcv op)          4 per output          0                      0
==========================  ====================  =====================  ==============================

* ``full`` counts everything, so attention gates (sigmoid, element-wise products, pooling, softmax,
  normalisations) are always included. This is the column to compare attention overheads with.
* ``mmdet`` is exactly what mmengine's ``FlopAnalyzer`` with its default handles returns, i.e. what
  mmdet 3.x's ``tools/analysis_tools/get_flops.py`` prints (it warns about and skips the rest).
* ``mmcv1`` emulates the module-hook counter of mmcv 1.x used by mmdet v1/v2's ``get_flops.py``, which
  produced the ECA-Net/EPSANet detection numbers: only ``nn`` layers are counted (functional ops such as
  sigmoid gates, products, residual adds, ``F.relu``, ``F.interpolate`` are not); the attention's global
  average / max pools over H, W are counted as the official codes' ``nn.AdaptiveAvg/MaxPool2d`` would be.
  It counts the operators mmattn's implementation runs: where mmattn fuses what the official code runs
  as an ``nn`` module (SA computes its GroupNorm with ``var_mean``), that part follows the rule of the
  fused operators (not counted), so ``mmcv1`` is exact for ResNet, SE, ECA and CBAM and approximate for
  SA and SGE.
  With trainable parameters (mmcv's counter skips frozen ones) it reproduces ECA-Net's Table 5 and
  EPSANet's README (see ``NOTES`` and :func:`eca_v1_estimate` for the few protocol differences) and,
  at 224 x 224 with the ImageNet head, the PytorchInsight (SGE) README to the printed digit.

Units are decimal (M = 1e6, G = 1e9) as mmdet prints. The ECA-Net ImageNet table uses 2^20 / 2^30
(``--backbones`` tables show both). Numbers that cannot match the papers, and why, are listed in the
notes printed under the tables (``NOTES``).

Examples::

    # every config, papers' numbers beside ours, markdown + JSON cache (used by collect_results.py)
    python tools/analysis_tools/get_flops.py configs --out work_dirs/complexity.md --json work_dirs/complexity.json
    python tools/analysis_tools/get_flops.py configs/eca_resnet/faster-rcnn_eca-r50_fpn_1x_coco.py --shape 800 1333
    python tools/analysis_tools/get_flops.py --backbones all --with-head          # ImageNet 224 table
    python tools/analysis_tools/get_flops.py --backbones all --backbone-shape 800 1333   # backbone at COCO size
    python tools/analysis_tools/get_flops.py --backbones SEResNet-50 --by-op
"""
import argparse
import copy
import glob
import json
import math
import os
import os.path as osp
import sys
import time
import warnings
from collections import Counter, OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

# mmengine 0.10.x imports pkg_resources (config inheritance); its deprecation warning is noise here
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

# ----------------------------------------------------------------------------- operator handles
# Raw categories recorded by the handles. Values are element / MAC counts; categories whose name
# starts with 'ew:' (element-wise) or 'reduce:' are already weighted for the 'full' convention.

ZERO_COST_OPS = (
    # shape / layout / copies
    'aten::view', 'aten::reshape', 'aten::flatten', 'aten::unflatten', 'aten::permute', 'aten::transpose',
    'aten::t', 'aten::contiguous', 'aten::squeeze', 'aten::unsqueeze', 'aten::unsqueeze_', 'aten::expand',
    'aten::expand_as', 'aten::view_as', 'aten::reshape_as', 'aten::flip', 'aten::roll', 'aten::repeat',
    'aten::cat', 'aten::stack', 'aten::chunk', 'aten::split', 'aten::split_with_sizes', 'aten::unbind',
    'aten::slice', 'aten::select', 'aten::narrow', 'aten::index', 'aten::index_select', 'aten::index_put_',
    'aten::gather', 'aten::masked_fill', 'aten::copy_', 'aten::clone', 'aten::detach', 'aten::to',
    'aten::type_as', 'aten::constant_pad_nd', 'aten::pad', 'aten::dropout', 'aten::alias', 'aten::lift_fresh',
    'aten::pixel_shuffle', 'aten::channel_shuffle',
    # creation
    'aten::zeros', 'aten::zeros_like', 'aten::ones', 'aten::ones_like', 'aten::empty', 'aten::empty_like',
    'aten::full', 'aten::full_like', 'aten::new_zeros', 'aten::new_ones', 'aten::new_full', 'aten::new_empty',
    'aten::arange', 'aten::scalar_tensor', 'aten::tensor',
    # integer / comparison / rounding / bookkeeping
    'aten::size', 'aten::numel', 'aten::Int', 'aten::Float', 'aten::ScalarImplicit', 'aten::nonzero',
    'aten::eq', 'aten::ne', 'aten::ge', 'aten::gt', 'aten::le', 'aten::lt', 'aten::__and__', 'aten::__or__',
    'aten::logical_and', 'aten::logical_or', 'aten::bitwise_not', 'aten::floor', 'aten::ceil', 'aten::round',
    'aten::floor_divide', 'aten::remainder', 'aten::clamp', 'aten::clamp_', 'aten::clamp_min',
    'aten::clamp_max', 'aten::argmax', 'aten::argmin', 'aten::sort', 'aten::topk', 'aten::any', 'aten::all',
    'aten::where', 'aten::meshgrid', 'aten::item', 'aten::dim', 'aten::is_floating_point',
)

#: element-wise arithmetic: FLOPs per output element (fused ops count each arithmetic step:
#: addcmul / addcdiv = a + b * c -> 2, lerp = a + w * (b - a) -> 3)
ELEMENTWISE_OPS = dict(
    {name: 1 for name in (
        'add', 'add_', 'sub', 'sub_', 'rsub', 'mul', 'mul_', 'div', 'div_', 'neg', 'reciprocal', 'abs', 'exp',
        'log', 'log2', 'log_', 'sqrt', 'rsqrt', 'pow', 'square', 'sigmoid', 'sigmoid_', 'tanh', 'tanh_',
        'hardsigmoid', 'hardswish', 'silu', 'silu_', 'gelu', 'elu', 'leaky_relu', 'leaky_relu_', 'hardtanh',
        'hardtanh_', 'relu6', 'softplus', 'erf', 'maximum', 'minimum')},
    addcmul=2, addcmul_=2, addcdiv=2, addcdiv_=2, lerp=3, lerp_=3)
#: reductions: FLOPs per INPUT element (std / var include computing the mean they need)
REDUCTION_OPS = {'mean': 1, 'sum': 1, 'amax': 1, 'amin': 1, 'prod': 1, 'std': 3, 'var': 3, 'std_mean': 3,
                 'var_mean': 3, 'logsumexp': 3, 'norm': 2, 'linalg_vector_norm': 2, 'cumsum': 1}

#: convention name -> {category or category prefix ('ew:', 'reduce:'): weight}
CONVENTIONS = OrderedDict([
    ('full', {'conv': 1, 'conv_transposed': 1, 'conv_bias': 1, 'linear': 1, 'linear_bias': 1, 'matmul': 1,
              'bn': 1, 'bn_affine': 1, 'norm': 4, 'norm_affine': 1, 'relu': 1, 'max_pool_window': 1,
              'avg_pool_window': 1, 'adaptive_avg_pool': 1, 'adaptive_max_pool': 1, 'upsample_nearest': 1,
              'upsample_bilinear': 4, 'grid_sampler': 4, 'roi_align': 4, 'softmax': 1, 'ew:': 1, 'reduce:': 1}),
    ('mmdet', {'conv': 1, 'conv_transposed': 1, 'linear': 1, 'matmul': 1, 'bn': 1, 'bn_affine': 1, 'norm': 4,
               'norm_affine': 1, 'adaptive_avg_pool': 1, 'upsample_nearest': 1, 'upsample_bilinear': 4,
               'grid_sampler': 4}),
    ('mmcv1', {'conv': 1, 'conv_transposed': 1, 'conv_bias': 1, 'linear': 1, 'matmul': 1, 'bn': 1, 'bn_affine': 1,
               'norm': 1, 'norm_affine': 1, 'reduce:gap': 1, 'reduce:gmp': 1,
               # counted only where the op runs inside these nn module types (module hooks):
               'relu@': 1, 'max_pool@': 1, 'avg_pool@': 1, 'adaptive_avg_pool@': 1, 'adaptive_max_pool@': 1}),
])
#: mmcv1: category -> nn module types whose calls the mmcv 1.x counter hooked
MMCV1_MODULE_CATEGORIES = {
    'relu': (nn.ReLU, ),
    'max_pool': (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),
    'avg_pool': (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d),
    'adaptive_avg_pool': (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d),
    'adaptive_max_pool': (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d),
}


def _shape(value) -> Optional[List[int]]:
    from mmengine.analysis.jit_handles import get_shape
    return get_shape(value)


def _numel(value) -> int:
    shape = _shape(value)
    return math.prod(shape) if shape is not None else 0


def _is_tensor(value) -> bool:
    return _shape(value) is not None


def _conv(inputs, outputs):
    from mmengine.analysis.jit_handles import conv_flop_jit
    counts = Counter(conv_flop_jit(inputs, outputs))
    if inputs[6].toIValue():  # transposed: kept apart (same weight as conv in every convention)
        counts['conv_transposed'] = counts.pop('conv')
        # diagnostic only (weight 0): MACs as if counted at every OUTPUT position, as the counter of
        # mmdet v1 (an early ptflops copy) did; see eca_v1_estimate()
        w_shape, out_shape = _shape(inputs[1]), _shape(outputs[0])
        counts['conv_transposed_outres'] = out_shape[0] * math.prod(w_shape) * math.prod(out_shape[2:])
    if _is_tensor(inputs[2]):
        counts['conv_bias'] += _numel(outputs[0])
    return counts


def _linear(inputs, outputs):
    from mmengine.analysis.jit_handles import linear_flop_jit
    counts = Counter({'linear': linear_flop_jit(inputs, outputs)})
    if len(inputs) > 2 and _is_tensor(inputs[2]):
        counts['linear_bias'] += _numel(outputs[0])
    return counts


def _addmm(inputs, outputs):
    from mmengine.analysis.jit_handles import addmm_flop_jit
    return Counter({'linear': addmm_flop_jit(inputs, outputs), 'linear_bias': _numel(outputs[0])})


def _matmul_like(handle_name):
    def handle(inputs, outputs):
        from mmengine.analysis import jit_handles
        return Counter({'matmul': getattr(jit_handles, handle_name)(inputs, outputs)})
    return handle


def _batch_norm(inputs, outputs):
    n = _numel(inputs[0])
    affine = _is_tensor(inputs[1])
    if inputs[5].toIValue():  # training: mmengine counts it like the other norms
        return Counter({'norm': n, 'norm_affine': n if affine else 0})
    return Counter({'bn': n, 'bn_affine': n if affine else 0})


def _norm(affine_index):
    def handle(inputs, outputs):
        n = _numel(inputs[0])
        return Counter({'norm': n, 'norm_affine': n if _is_tensor(inputs[affine_index]) else 0})
    return handle


def _int_list(value) -> List[int]:
    """An int / int-list argument of a traced op (a constant or a prim::ListConstruct of constants)."""
    ivalue = value.toIValue()
    if ivalue is None and value.node().kind() == 'prim::ListConstruct':
        ivalue = [v.toIValue() for v in value.node().inputs()]
    if ivalue is None or (isinstance(ivalue, (list, tuple)) and any(v is None for v in ivalue)):
        raise ValueError(f'cannot read a constant int list from {value}')
    return [int(ivalue)] if isinstance(ivalue, int) else [int(v) for v in ivalue]


def _pool(kind):
    def handle(inputs, outputs):
        kernel = _int_list(inputs[1])
        return Counter({kind: _numel(inputs[0]), f'{kind}_window': _numel(outputs[0]) * math.prod(kernel)})
    return handle


def _per_output(category, scale=1):
    return lambda inputs, outputs: Counter({category: scale * _numel(outputs[0])})


def _per_input(category, scale=1):
    return lambda inputs, outputs: Counter({category: scale * _numel(inputs[0])})


def _max_min(name):
    def handle(inputs, outputs):
        # max(x) / max(x, dim) reduce; max(x, y) is element-wise
        if len(inputs) == 2 and _is_tensor(inputs[1]):
            return Counter({f'ew:{name}': _numel(outputs[0])})
        return Counter({f'reduce:{name}': _numel(inputs[0])})
    return handle


def _spatial_or_plain(name, spatial):
    """mean / amax: ``reduce:gap`` / ``reduce:gmp`` when it pools over the last two dims (H, W) of a
    tensor of 4 or more dims (a global pooling, an ``nn.AdaptiveAvg/MaxPool2d`` in the official codes),
    else ``reduce:<name>``."""
    def handle(inputs, outputs):
        shape = _shape(inputs[0])
        n = math.prod(shape) if shape is not None else 0
        try:
            dims = _int_list(inputs[1])
        except (ValueError, RuntimeError):
            dims = []
        if shape is not None and len(shape) >= 4 and sorted(d % len(shape) for d in dims) == \
                [len(shape) - 2, len(shape) - 1]:
            return Counter({f'reduce:{spatial}': n})
        return Counter({f'reduce:{name}': n})
    return handle


def _roi_align(inputs, outputs):
    return Counter({'roi_align': _numel(outputs[0])})


def op_handles() -> Dict[str, object]:
    """aten operator -> handle returning raw category counts."""
    handles = {
        'aten::_convolution': _conv,
        'aten::linear': _linear,
        'aten::addmm': _addmm,
        'aten::matmul': _matmul_like('matmul_flop_jit'),
        'aten::mm': _matmul_like('matmul_flop_jit'),
        'aten::bmm': _matmul_like('bmm_flop_jit'),
        'aten::einsum': _matmul_like('einsum_flop_jit'),
        'aten::batch_norm': _batch_norm,
        'aten::group_norm': _norm(2),
        'aten::layer_norm': _norm(2),
        'aten::instance_norm': _norm(1),
        'aten::relu': _per_output('relu'),
        'aten::relu_': _per_output('relu'),
        'aten::max_pool1d': _pool('max_pool'),
        'aten::max_pool2d': _pool('max_pool'),
        'aten::max_pool3d': _pool('max_pool'),
        'aten::avg_pool1d': _pool('avg_pool'),
        'aten::avg_pool2d': _pool('avg_pool'),
        'aten::avg_pool3d': _pool('avg_pool'),
        'aten::adaptive_avg_pool1d': _per_input('adaptive_avg_pool'),
        'aten::adaptive_avg_pool2d': _per_input('adaptive_avg_pool'),
        'aten::adaptive_avg_pool3d': _per_input('adaptive_avg_pool'),
        'aten::adaptive_max_pool2d': _per_input('adaptive_max_pool'),
        'aten::upsample_nearest2d': _per_output('upsample_nearest'),
        'aten::upsample_bilinear2d': _per_output('upsample_bilinear'),
        'aten::grid_sampler': _per_output('grid_sampler'),
        'aten::softmax': _per_output('softmax', 3),
        'aten::_softmax': _per_output('softmax', 3),
        'aten::log_softmax': _per_output('softmax', 3),
        'aten::max': _max_min('max'),
        'aten::min': _max_min('min'),
        'prim::PythonOp.RoIAlignFunction': _roi_align,
        # mmattn.layers.helpers.var_mean (a two-pass var_mean with its own backward): as aten::var_mean
        'prim::PythonOp._VarMean': _per_input('reduce:var_mean', REDUCTION_OPS['var_mean']),
    }
    for name, scale in ELEMENTWISE_OPS.items():
        handles[f'aten::{name}'] = _per_output(f'ew:{name.rstrip("_")}', scale)
    for name, scale in REDUCTION_OPS.items():
        handles[f'aten::{name}'] = _per_input(f'reduce:{name}', scale)
    handles['aten::mean'] = _spatial_or_plain('mean', 'gap')
    handles['aten::amax'] = _spatial_or_plain('amax', 'gmp')
    return handles


def weigh(counts: Dict[str, int], convention: str) -> int:
    """Total FLOPs of raw category ``counts`` under ``convention`` (module-restricted categories of
    ``mmcv1`` must already be in ``counts`` as ``<category>@``)."""
    weights = CONVENTIONS[convention]
    total = 0
    for cat, n in counts.items():
        if cat in weights:
            total += weights[cat] * n
        elif ':' in cat:
            prefix = cat.split(':', 1)[0] + ':'
            total += weights.get(prefix, 0) * n
    return int(total)


class UnsupportedOpsError(RuntimeError):
    """The trace contains operators that have no counting rule."""


def analyze(model: nn.Module, inputs: Tuple[torch.Tensor, ...], allow_unsupported: bool = False) -> dict:
    """Trace ``model(*inputs)`` and count. Returns ``dict(params, flops={convention: n}, by_op, uncounted)``."""
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.clear_op_handles()
    analyzer.set_op_handle(**op_handles())
    for op in ZERO_COST_OPS:
        analyzer.set_op_handle(op, None)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        raw = Counter(analyzer.by_operator())
    unsupported = Counter(analyzer.unsupported_ops())
    if unsupported and not allow_unsupported:
        raise UnsupportedOpsError(
            'operators without a counting rule (they would be silently skipped): ' +
            ', '.join(f'{op} x{n}' for op, n in unsupported.most_common()) +
            '. Add a handle in tools/analysis_tools/get_flops.py (op_handles / ZERO_COST_OPS) or pass '
            '--allow-unsupported to report them as uncounted.')
    # mmcv1: pooling / ReLU only where they run inside the nn module types mmcv's hooks knew
    per_module = analyzer.by_module_and_operator()
    seen = set()
    for name, module in model.named_modules():
        canonical = analyzer.canonical_module_name(name)
        if canonical in seen:
            continue
        seen.add(canonical)
        for cat, types in MMCV1_MODULE_CATEGORIES.items():
            if isinstance(module, types):
                raw[f'{cat}@'] += per_module[canonical].get(cat, 0)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return dict(params=int(params), trainable_params=int(trainable), flops={c: weigh(raw, c) for c in CONVENTIONS},
                by_op={k: int(v) for k, v in sorted(raw.items()) if not k.endswith('@')},
                uncounted={k: int(v) for k, v in unsupported.items()})


# ----------------------------------------------------------------------------- models and inputs
class ClassifierWrapper(nn.Module):
    """Backbone (+ optional ImageNet head: global average pool + Linear(C, num_classes))."""

    def __init__(self, backbone: nn.Module, with_head: bool = False, num_classes: int = 1000):
        super().__init__()
        self.backbone = backbone
        self.with_head = with_head
        if with_head:
            channels = _last_channels(backbone)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        feats = self.backbone(x)
        feats = feats if isinstance(feats, (tuple, list)) else (feats, )
        if not self.with_head:
            return tuple(feats)
        return self.fc(torch.flatten(self.avgpool(feats[-1]), 1))


def _last_channels(backbone: nn.Module) -> int:
    with torch.no_grad():
        was_training = backbone.training
        backbone.eval()
        out = backbone(torch.zeros(1, 3, 64, 64))
        backbone.train(was_training)
    out = out if isinstance(out, (tuple, list)) else (out, )
    return int(out[-1].shape[1])


def fixed_proposals(num: int, height: int, width: int) -> torch.Tensor:
    """``num`` deterministic boxes (x1, y1, x2, y2) inside the image, sizes log-uniform from 16 px to
    the image size (all four FPN RoI levels: < 112, 112-224, 224-448, >= 448 px), from
    low-discrepancy sequences so the first 100 (the mask head's RoIs) cover all levels as well."""
    i = torch.arange(num, dtype=torch.float64) + 1
    frac = lambda a: torch.remainder(i * a, 1.0)  # noqa: E731
    longest = max(16.0, float(min(height, width)))
    size = 16.0 * (longest / 16.0)**frac(0.5698402909980532)
    aspect = 2.0**(frac(0.7548776662466927) * 2 - 1)  # 0.5 .. 2
    w = torch.clamp(size * aspect.sqrt(), 2.0, width)
    h = torch.clamp(size / aspect.sqrt(), 2.0, height)
    cx = w / 2 + frac(0.6180339887498949) * (width - w)
    cy = h / 2 + frac(0.4142135623730951) * (height - h)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1).float()


def _flatten_tensors(obj) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _flatten_tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _flatten_tensors(item)]
    return []


class DetectorWrapper(nn.Module):
    """Runs the inference tensor path of an mmdet detector on a bare image tensor (see module doc)."""

    def __init__(self, detector: nn.Module, height: int, width: int, num_proposals: int = 1000):
        super().__init__()
        self.detector = detector
        self.height, self.width = height, width
        self.register_buffer('proposals', fixed_proposals(num_proposals, height, width), persistent=False)

    def data_samples(self, batch: int):
        from mmdet.structures import DetDataSample
        shape = (self.height, self.width)
        return [DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                            batch_input_shape=shape, scale_factor=(1.0, 1.0)))
                for _ in range(batch)]

    @property
    def two_stage(self) -> bool:
        return getattr(self.detector, 'roi_head', None) is not None

    def forward(self, inputs):
        det = self.detector
        samples = self.data_samples(inputs.shape[0])
        if not self.two_stage:
            return tuple(_flatten_tensors(det._forward(inputs, samples)))
        from mmengine.structures import InstanceData
        x = det.extract_feat(inputs)
        outs = []
        if getattr(det, 'rpn_head', None) is not None:
            outs.append(det.rpn_head(x))
        proposals = [InstanceData(bboxes=self.proposals) for _ in samples]
        outs.append(det.roi_head.forward(x, proposals, samples))
        return tuple(_flatten_tensors(outs))


def _switch_off_init_cfg(cfg):
    """Recursively set every ``init_cfg`` (and legacy ``pretrained``) to None: nothing is loaded."""
    if isinstance(cfg, dict):
        for key in list(cfg.keys()):
            if key in ('init_cfg', 'pretrained'):
                cfg[key] = None
            else:
                _switch_off_init_cfg(cfg[key])
    elif isinstance(cfg, (list, tuple)):
        for item in cfg:
            _switch_off_init_cfg(item)
    return cfg


def load_config(path: str, cfg_options: Optional[dict] = None):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_detector(cfg) -> nn.Module:
    """``cfg.model`` built on CPU in eval mode with every init_cfg off (no download, no data)."""
    from mmdet.registry import MODELS
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope
    model_cfg = _switch_off_init_cfg(copy.deepcopy(cfg.model))
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')):
        import mmdet.models  # noqa: F401  (registers mmdet modules)
        model = MODELS.build(model_cfg)
    model = revert_sync_batchnorm(model)
    model.eval()
    return model


def build_backbone(spec: str) -> Tuple[nn.Module, str, int]:
    """``'SEResNet-50'`` (``TYPE-DEPTH``, mmdet registry type) -> (backbone, type, depth)."""
    import mmattn.models  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    if '-' not in spec:
        raise ValueError(f'backbone spec {spec!r} must be TYPE-DEPTH, e.g. ECAResNet-50')
    btype, depth = spec.rsplit('-', 1)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(dict(type=btype, depth=int(depth), init_cfg=None))
    model.eval()  # (mmdet's ResNet.train() returns None: no chaining)
    return model, btype, int(depth)


# ----------------------------------------------------------------------------- papers' numbers
BACKBONE_LABELS = {'ResNet': 'ResNet', 'SEResNet': 'SE-ResNet', 'ECAResNet': 'ECA-ResNet', 'SAResNet': 'SA-ResNet',
                   'CBAMResNet': 'CBAM-ResNet', 'SGEResNet': 'SGE-ResNet', 'EPSANet': 'EPSANet'}
DETECTOR_LABELS = {'FasterRCNN': 'Faster R-CNN', 'MaskRCNN': 'Mask R-CNN', 'RetinaNet': 'RetinaNet'}
ALL_BACKBONES = ('ResNet', 'SEResNet', 'ECAResNet', 'SAResNet', 'CBAMResNet', 'SGEResNet', 'EPSANet')

#: (detector type, backbone type, depth) -> [(params M, GFLOPs, source)], decimal units, input 1280x800
PAPER_DETECTORS = {
    ('FasterRCNN', 'ResNet', 50): [(41.53, 207.07, 'ECA T5')],
    ('FasterRCNN', 'SEResNet', 50): [(44.02, 207.18, 'ECA T5')],
    ('FasterRCNN', 'ECAResNet', 50): [(41.53, 207.18, 'ECA T5')],
    ('FasterRCNN', 'EPSANet', 50): [(38.56, 197.07, 'EPSA README')],
    ('FasterRCNN', 'ResNet', 101): [(60.52, 283.14, 'ECA T5')],
    ('FasterRCNN', 'SEResNet', 101): [(65.24, 283.33, 'ECA T5')],
    ('FasterRCNN', 'ECAResNet', 101): [(60.52, 283.32, 'ECA T5')],
    ('MaskRCNN', 'ResNet', 50): [(44.18, 275.58, 'ECA T5')],
    ('MaskRCNN', 'SEResNet', 50): [(46.67, 275.69, 'ECA T5')],
    ('MaskRCNN', 'ECAResNet', 50): [(44.18, 275.69, 'ECA T5')],
    ('MaskRCNN', 'EPSANet', 50): [(41.20, 248.53, 'EPSA README')],
    ('MaskRCNN', 'ResNet', 101): [(63.17, 351.65, 'ECA T5')],
    ('MaskRCNN', 'SEResNet', 101): [(67.89, 351.84, 'ECA T5')],
    ('MaskRCNN', 'ECAResNet', 101): [(63.17, 351.83, 'ECA T5')],
    ('RetinaNet', 'ResNet', 50): [(37.74, 239.32, 'ECA T5')],
    ('RetinaNet', 'SEResNet', 50): [(40.23, 239.43, 'ECA T5')],
    ('RetinaNet', 'ECAResNet', 50): [(37.74, 239.43, 'ECA T5')],
    ('RetinaNet', 'EPSANet', 50): [(34.78, 229.32, 'EPSA README')],
    ('RetinaNet', 'ResNet', 101): [(56.74, 315.39, 'ECA T5')],
    ('RetinaNet', 'SEResNet', 101): [(61.45, 315.58, 'ECA T5')],
    ('RetinaNet', 'ECAResNet', 101): [(56.74, 315.57, 'ECA T5')],
}

#: (backbone type, depth) -> [(params, GFLOPs, units, source)] at 224 x 224 WITH the ImageNet head.
#: units 'dec' = 1e6 / 1e9, 'bin' = 2^20 / 2^30 (ECA-Net's thop script). None = not published.
PAPER_IMAGENET = {
    ('ResNet', 50): [(25.56, 4.122, 'dec', 'SGE README'), (24.37, 3.86, 'bin', 'ECA T3')],
    ('SEResNet', 50): [(28.09, 4.130, 'dec', 'SGE README'), (28.09, 4.13, 'dec', 'mmpretrain'),
                       (26.77, 3.87, 'bin', 'ECA T3')],
    ('ECAResNet', 50): [(24.37, 3.86, 'bin', 'ECA T3')],
    ('SAResNet', 50): [(25.56, 4.12276, 'dec', 'SA abstract: 4.12 + 2.76e-3')],
    ('CBAMResNet', 50): [(28.09, 4.139, 'dec', 'SGE README'), (26.77, 3.87, 'bin', 'ECA T3')],
    ('SGEResNet', 50): [(25.56, 4.127, 'dec', 'SGE README')],
    ('EPSANet', 50): [(22.56, 3.62, 'dec', 'EPSA README')],
    ('ResNet', 101): [(44.55, 7.849, 'dec', 'SGE README'), (42.49, 7.34, 'bin', 'ECA T3')],
    ('SEResNet', 101): [(49.33, 7.863, 'dec', 'SGE README'), (49.33, 7.86, 'dec', 'mmpretrain'),
                        (47.01, 7.35, 'bin', 'ECA T3')],
    ('ECAResNet', 101): [(42.49, 7.35, 'bin', 'ECA T3')],
    ('SAResNet', 101): [(44.55, None, 'dec', 'SA README')],
    ('CBAMResNet', 101): [(49.33, 7.879, 'dec', 'SGE README'), (47.01, 7.35, 'bin', 'ECA T3')],
    ('SGEResNet', 101): [(44.55, 7.858, 'dec', 'SGE README')],
    ('EPSANet', 101): [(38.90, 6.82, 'dec', 'EPSA README')],
}

NOTES = """\
Notes (how the papers counted, and why some numbers differ):

1. Units. M = 1e6 and G = 1e9 (mmdet). ECA-Net's ImageNet table divides by 2^20 / 2^30 (its thop
   script): its "24.37M" is 25,557,032 parameters; the ImageNet table shows our numbers in both units.
   The detection tables of ECA-Net and EPSANet are decimal (mmdet get_flops, input 1280x800).
2. Counting. conv/linear/matmul: 1 FLOP per multiply-accumulate (mmdet, fvcore, mmcv). `full` also
   counts every element-wise, pooling, reduction and normalisation op, so attention gates count;
   `mmdet` is mmengine FlopAnalyzer's default (what mmdet 3.x get_flops prints: it skips sigmoid,
   products, adds, ReLU, max-pool, mean, softmax ...); `mmcv1` emulates the module-hook counter of
   mmdet v1/v2 (mmcv 1.x): conv bias, BN x2, nn.ReLU, nn pools, global pools of the attention modules;
   no functional ops. The papers' attention increments (+0.11 GFLOPs for SE and ECA on Faster R-CNN
   R-50) are only the global average pool of each block (112.6 MFLOPs at 1280x800); the sigmoid gate
   and the gating product, which `full` counts, are missing there (about twice the increment).
3. Parameters in the detection papers are TRAINABLE parameters (mmcv's counter skips requires_grad=False):
   frozen_stages=1 removes the stem and layer1 (225,344 parameters in ResNet-50, plus layer1's
   attention). Compare the papers with the second number of "params all / trainable".
4. ECA-Net Table 5 is reproduced exactly (every Faster/Mask/RetinaNet R-50/101 row; see the
   reconciliation table) once our `mmcv1` count and trainable parameters are moved to its protocol:
   (a) mmdet v1's 81-class heads: class-specific box regressor 81 x 4 (3.x: 80 x 4) -> +4,100
   parameters and +4.1 MFLOPs over 1000 RoIs; Mask R-CNN's logits 81 channels (+257, +0.02 G);
   (b) mmdet v1's counter (an early ptflops copy) counted the mask head's 2x2 stride-2 transposed
   conv at its 28x28 output instead of its 14x14 input: 4x its 5.14 GMACs over 100 RoIs, +15.41 G;
   this is why the paper's Mask R-CNN is 15.44 G above ours; (c) ECA-Net's SE blocks have no FC
   biases (moskomule layout; mmattn's SEResNet default has them, as the SE paper and timm):
   -15,232 / -33,728 trainable parameters (R-50 / R-101). RoIAlign and the RPN's NMS are not counted
   by that tool; v1's forward_dummy fed 1000 proposals (100 to the mask head) as ours does.
5. EPSANet README: Faster R-CNN (38.56 M / 197.07 G) and RetinaNet (34.78 / 229.32) equal our `mmcv1`
   count with trainable parameters exactly; Mask R-CNN's 248.53 G is our 250.14 G minus exactly the
   80-class mask logits conv (1.61 G over 100 RoIs at 28x28): its tool missed that layer (reason
   unknown). Its ImageNet FLOPs (3.62 / 6.82 G) are our `mmdet` column (conv/linear MACs + BN).
6. ImageNet, 224x224 with the head: `mmcv1` reproduces the PytorchInsight (SGE) README to the printed
   digit for ResNet-50 4.122, SE 4.130, CBAM 4.139, ResNet-101 7.849, SE 7.863, CBAM 7.879 G (SGE 4.127 /
   7.858 also match, but through mmattn's fused SGE: its matmul stands where the official GAP module
   was). SA-Net's "2.76e-3 GFLOPs" for SA in ResNet-50 is the global pool of its channel branch (half
   the channels): `mmcv1` gives 4.122 + 0.00276 = 4.125 G; its "300 parameters" disagrees with its own
   code (708 = 3C/64 per block). ECA-Net's 3.86 / 7.34 "G" (thop / 2^30 = 4.14e9 / 7.88e9) cannot be
   reproduced (`mmcv1`: 3.84 / 7.31 x 2^30); its SE row (26.77 x 2^20 = 28.07 M) is the bias-free SE
   of the SE paper, and its CBAM row repeats it (CBAM's own count: 28,089,624 = 26.79 x 2^20).
7. Input. (3, 1280, 800) as the papers (mmdet's default); FLOPs are symmetric in H and W. A real
   COCO image is resized to 800x1333 and padded to 800x1344 (use --shape 800 1344).
"""


# ----------------------------------------------------------------------------- targets and tables
def collect_configs(targets: Sequence[str]) -> List[str]:
    """Config files from files, folders (recursive, ``_base_`` folders skipped) and globs."""
    found = []
    for t in targets:
        if osp.isdir(t):
            in_dir = []
            for root, dirs, files in os.walk(t):
                dirs[:] = [d for d in dirs if d != '_base_' and not d.startswith('.')]
                in_dir += [osp.join(root, f) for f in files if f.endswith('.py')]
            found += sorted(in_dir)
        elif any(ch in t for ch in '*?['):
            found += sorted(glob.glob(t, recursive=True))
        elif osp.isfile(t):
            found.append(t)
        else:
            raise FileNotFoundError(f'{t!r} is not a file, folder or glob that matches anything')
    seen, unique = set(), []
    for f in found:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique


def backbone_type_depth(model_cfg) -> Tuple[str, Optional[int]]:
    backbone = model_cfg.get('backbone', {}) if hasattr(model_cfg, 'get') else {}
    btype = str(backbone.get('type', '?')).split('.')[-1]
    return btype, backbone.get('depth')


def _num_classes(model_cfg) -> Optional[int]:
    """num_classes of the (first) box head of a detector config."""
    for key in ('bbox_head', 'roi_head'):
        head = model_cfg.get(key)
        if head is None:
            continue
        head = head.get('bbox_head', head) if key == 'roi_head' else head
        head = head[0] if isinstance(head, (list, tuple)) else head
        if 'num_classes' in head:
            return int(head['num_classes'])
    return None


def _v1_head_info(model: nn.Module, num_proposals: int) -> dict:
    """What mmdet v1's heads had in addition (81 classes incl. background in the class-specific box
    regressor and mask logits), and the trainable SE FC biases (ECA-Net's SE had none)."""
    import re
    info = dict(proposals=num_proposals)
    roi = getattr(model, 'roi_head', None)
    bbox_head = getattr(roi, 'bbox_head', None)
    if isinstance(getattr(bbox_head, 'fc_reg', None), nn.Linear) and not getattr(bbox_head, 'reg_class_agnostic', True):
        info['reg_in'] = bbox_head.fc_reg.in_features
    mask_head = getattr(roi, 'mask_head', None)
    logits = getattr(mask_head, 'conv_logits', None)
    if isinstance(logits, nn.Conv2d) and not getattr(mask_head, 'class_agnostic', True):
        size = roi.mask_roi_extractor.roi_layers[0].output_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        scale = 1
        if getattr(mask_head, 'upsample', None) is not None:
            scale = int(getattr(mask_head, 'scale_factor', 1) or 1)
        info.update(mask_in=logits.in_channels, mask_hw=size[0] * scale * size[1] * scale,
                    mask_rois=min(100, num_proposals))
    info['se_bias_trainable'] = sum(p.numel() for n, p in model.named_parameters()
                                    if p.requires_grad and re.search(r'\.se\.fc\.\d+\.bias$', n))
    return info


def eca_v1_estimate(rec: dict) -> Optional[Tuple[int, int, dict]]:
    """Our count converted to ECA-Net's protocol (mmdet v1 get_flops, Table 5): ``mmcv1`` FLOPs and
    trainable parameters, plus mmdet v1's 81st class in the class-specific box regressor (4 outputs)
    and mask logits (1 channel), the mask head's 2x2 transposed conv counted at its output
    resolution (4x), minus the SE FC biases (ECA-Net's SE has none). Returns (params, flops, parts)."""
    info = rec.get('v1_heads')
    if not info or 'trainable_params' not in rec:
        return None
    parts = OrderedDict()
    parts['81-class heads params'] = 4 * (info['reg_in'] + 1) if 'reg_in' in info else 0
    parts['81-class heads params'] += info['mask_in'] + 1 if 'mask_in' in info else 0
    parts['SE FC biases'] = -info['se_bias_trainable']
    parts['81-class heads FLOPs'] = info['proposals'] * info['reg_in'] * 4 if 'reg_in' in info else 0
    parts['81-class heads FLOPs'] += info['mask_rois'] * info['mask_hw'] * (info['mask_in'] + 1) if 'mask_in' in info \
        else 0
    by_op = rec['by_op']
    parts['deconv at output res.'] = by_op.get('conv_transposed_outres', 0) - by_op.get('conv_transposed', 0)
    params = rec['trainable_params'] + parts['81-class heads params'] + parts['SE FC biases']
    flops = rec['flops']['mmcv1'] + parts['81-class heads FLOPs'] + parts['deconv at output res.']
    return params, flops, parts


def reconciliation_table(records: Sequence[dict]) -> str:
    """ECA-Net Table 5 rows: our count converted step by step to the paper's protocol."""
    head = ('| config | ours trainable params (M) | + 81-class heads | − SE FC biases | = params (M) | paper | '
            'ours mmcv1 GFLOPs | + 81-class heads | + deconv at 28x28 | = GFLOPs | paper | match |')
    lines = ['Reconciliation with ECA-Net Table 5 (mmdet v1 get_flops): our numbers converted to its protocol '
             '(see eca_v1_estimate)', '', head, '|' + '|'.join(['---'] * 12) + '|']
    for rec in records:
        papers = [p for p in _papers(rec) if p[2] == 'ECA T5']
        est = eca_v1_estimate(rec) if papers and tuple(rec.get('shape', ())) in ((1280, 800), (800, 1280)) else None
        if est is None:
            continue
        params, flops, parts = est
        (pp, pg, _), = papers
        match = 'yes' if (round(params / 1e6, 2), round(flops / 1e9, 2)) == (pp, pg) else 'no'
        lines.append(
            f'| {rec["name"]} | {rec["trainable_params"] / 1e6:.4f} | {parts["81-class heads params"]:+,} | '
            f'{parts["SE FC biases"]:+,} | {params / 1e6:.2f} | {pp:.2f} | {rec["flops"]["mmcv1"] / 1e9:.3f} | '
            f'{parts["81-class heads FLOPs"] / 1e9:+.3f} | {parts["deconv at output res."] / 1e9:+.3f} | '
            f'{flops / 1e9:.2f} | '
            f'{pg:.2f} | {match} |')
    return '\n'.join(lines) if len(lines) > 4 else ''


def complexity_of_config(path: str, shape: Tuple[int, int], num_proposals: int = 1000,
                         cfg_options: Optional[dict] = None, allow_unsupported: bool = False) -> dict:
    """Complexity record of one detector config (see :func:`analyze` for the counted fields)."""
    cfg = load_config(path, cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'{path} has no model')
    det_type = str(cfg.model.get('type', '?')).split('.')[-1]
    btype, depth = backbone_type_depth(cfg.model)
    model = build_detector(cfg)
    wrapper = DetectorWrapper(model, shape[0], shape[1], num_proposals)
    wrapper.eval()
    inputs = (torch.randn(1, 3, shape[0], shape[1], generator=torch.Generator().manual_seed(0)), )
    record = analyze(wrapper, inputs, allow_unsupported)
    record.update(config=path, name=osp.splitext(osp.basename(path))[0], detector=det_type, backbone=btype,
                  depth=depth, shape=list(shape), proposals=num_proposals if wrapper.two_stage else None,
                  v1_heads=_v1_head_info(model, num_proposals), num_classes=_num_classes(cfg.model),
                  protocol='_'.join(osp.splitext(osp.basename(path))[0].split('_')[2:]))
    return record


def complexity_of_backbone(spec: str, shape: Tuple[int, int], with_head: bool = False,
                           allow_unsupported: bool = False) -> dict:
    backbone, btype, depth = build_backbone(spec)
    model = ClassifierWrapper(backbone, with_head)
    model.eval()
    inputs = (torch.randn(1, 3, shape[0], shape[1], generator=torch.Generator().manual_seed(0)), )
    record = analyze(model, inputs, allow_unsupported)
    record.update(name=spec, backbone=btype, depth=depth, shape=list(shape), with_head=with_head)
    return record


def _m(n, unit=1e6):
    return f'{n / unit:.2f}'


def _g(n, unit=1e9, digits=2):
    return f'{n / unit:.{digits}f}'


def label(btype: str, depth) -> str:
    name = BACKBONE_LABELS.get(btype, btype)
    return f'{name}-{depth}' + (' small' if btype == 'EPSANet' else '') if depth else name


def _papers(rec: dict) -> list:
    """Published (params, GFLOPs, source) for a COCO (80-class) detector record."""
    if rec.get('num_classes') != 80:
        return []
    return PAPER_DETECTORS.get((rec.get('detector'), rec.get('backbone'), rec.get('depth')), [])


def _baseline(records: Sequence[dict], rec: dict,
              key=('detector', 'depth', 'shape', 'num_classes', 'protocol')) -> Optional[dict]:
    for other in records:
        if other.get('backbone') == 'ResNet' and all(other.get(k) == rec.get(k) for k in key) \
                and other.get('proposals') == rec.get('proposals'):
            return other
    return None


def _paper_detector_delta(rec) -> str:
    papers = _papers(rec)
    base = _papers(dict(rec, backbone='ResNet'))
    if not papers or not base or rec['backbone'] == 'ResNet' or papers[0][2] != base[0][2]:
        return '–'
    return f'{papers[0][0] - base[0][0]:+.2f} / {papers[0][1] - base[0][1]:+.2f}'


def _detector_sort_key(rec: dict):
    order = lambda seq, x: seq.index(x) if x in seq else len(seq)  # noqa: E731
    return ('error' in rec, rec.get('num_classes') != 80, rec.get('protocol', ''),
            order(tuple(DETECTOR_LABELS), rec.get('detector')), rec.get('depth') or 0,
            order(ALL_BACKBONES, rec.get('backbone')), rec.get('name', ''))


def detector_table(records: Sequence[dict]) -> str:
    """Markdown table of detector records, papers' numbers beside ours."""
    head = ('| config | detector | backbone | params (M) all / trainable | GFLOPs full | GFLOPs mmdet | GFLOPs mmcv1 | '
            'Δ vs ResNet: params (M) / GFLOPs full / mmcv1 | paper params (M) / GFLOPs | paper Δ params / GFLOPs |'
            ' source |')
    lines = [head, '|' + '|'.join(['---'] * 11) + '|']
    for rec in records:
        if 'error' in rec:
            lines.append(f'| {rec["name"]} | – | – | error: {rec["error"]} |' + ' – |' * 7)
            continue
        base = _baseline(records, rec)
        if base is not None and base is not rec:
            delta = (f'{(rec["params"] - base["params"]) / 1e6:+.3f} / '
                     f'{(rec["flops"]["full"] - base["flops"]["full"]) / 1e9:+.2f} / '
                     f'{(rec["flops"]["mmcv1"] - base["flops"]["mmcv1"]) / 1e9:+.2f}')
        else:
            delta = '–'
        papers = _papers(rec)
        paper = '; '.join(f'{p:.2f} / {g:.2f}' for p, g, _ in papers) or '–'
        source = '; '.join(s for _, _, s in papers) or '–'
        uncounted = ' (uncounted ops!)' if rec.get('uncounted') else ''
        lines.append(
            f'| {rec["name"]} | {DETECTOR_LABELS.get(rec["detector"], rec["detector"])} | '
            f'{label(rec["backbone"], rec["depth"])} | {_m(rec["params"])} / {_m(rec["trainable_params"])} | '
            f'{_g(rec["flops"]["full"])}{uncounted} | '
            f'{_g(rec["flops"]["mmdet"])} | {_g(rec["flops"]["mmcv1"])} | {delta} | {paper} | '
            f'{_paper_detector_delta(rec)} | {source} |')
    return '\n'.join(lines)


def backbone_table(records: Sequence[dict]) -> str:
    """Markdown table of backbone records (ImageNet papers' numbers when the head is included at 224)."""
    head = ('| backbone | input | head | params (M) | params (2^20) | GFLOPs full | GFLOPs mmdet | GFLOPs mmcv1 | '
            'mmcv1 (2^30) | Δ vs ResNet: params / GFLOPs full / mmcv1 (M, M, M) | '
            'paper params / GFLOPs (units, source) |')
    lines = [head, '|' + '|'.join(['---'] * 11) + '|']
    for rec in records:
        if 'error' in rec:
            lines.append(f'| {rec["name"]} | error: {rec["error"]} |' + ' – |' * 9)
            continue
        base = _baseline(records, rec, key=('depth', 'shape', 'with_head'))
        delta = '–'
        if base is not None and base is not rec:
            delta = (f'{(rec["params"] - base["params"]) / 1e6:+.4f} / '
                     f'{(rec["flops"]["full"] - base["flops"]["full"]) / 1e6:+.1f} / '
                     f'{(rec["flops"]["mmcv1"] - base["flops"]["mmcv1"]) / 1e6:+.1f}')
        paper = '–'
        if rec.get('with_head') and tuple(rec['shape']) == (224, 224):
            entries = PAPER_IMAGENET.get((rec['backbone'], rec['depth']), [])
            paper = '; '.join(
                f'{p:.2f}M / {"–" if g is None else f"{g:g}G"} ({"2^20/2^30" if u == "bin" else "1e6/1e9"}, {s})'
                for p, g, u, s in entries) or '–'
        lines.append(
            f'| {label(rec["backbone"], rec["depth"])} | {rec["shape"][0]}x{rec["shape"][1]} | '
            f'{"yes" if rec.get("with_head") else "no"} | {rec["params"]:,} ({_m(rec["params"])}) | '
            f'{_m(rec["params"], 2**20)} | {_g(rec["flops"]["full"], digits=3)} | '
            f'{_g(rec["flops"]["mmdet"], digits=3)} | {_g(rec["flops"]["mmcv1"], digits=3)} | '
            f'{_g(rec["flops"]["mmcv1"], 2**30, digits=3)} | {delta} | {paper} |')
    return '\n'.join(lines)


def by_op_table(rec: dict) -> str:
    lines = [f'{rec["name"]}: raw counts per category (MACs or elements; ew:/reduce: already weighted)']
    for cat, n in sorted(rec['by_op'].items(), key=lambda kv: -kv[1]):
        lines.append(f'  {cat:<24} {n / 1e6:14.3f} M')
    if rec.get('uncounted'):
        lines.append('  UNCOUNTED operators: ' + ', '.join(f'{k} x{v}' for k, v in rec['uncounted'].items()))
    return '\n'.join(lines)


def parse_shape(values: Optional[Sequence[int]], default: Tuple[int, int]) -> Tuple[int, int]:
    if not values:
        return default
    if len(values) == 1:
        return (values[0], values[0])
    if len(values) == 2:
        return (values[0], values[1])
    raise ValueError('--shape takes 1 or 2 numbers (H W)')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Params/FLOPs of mmattn backbones and detectors (papers beside)',
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('Examples::')[-1])
    parser.add_argument('configs', nargs='*', help='config files, folders (recursive) or globs')
    parser.add_argument('--backbones', nargs='+', metavar='TYPE-DEPTH',
                        help="bare backbones, e.g. ResNet-50 ECAResNet-101; 'all' = every mmattn backbone at "
                        'depths 50 and 101 plus ResNet')
    parser.add_argument('--with-head', action='store_true',
                        help='backbones: add the ImageNet head (global avg pool + fc to 1000 classes)')
    parser.add_argument('--shape', type=int, nargs='+', metavar='N',
                        help='detector input H W (or one number for a square); default 1280 800 (the papers)')
    parser.add_argument('--backbone-shape', type=int, nargs='+', metavar='N',
                        help='backbone input H W (or one number); default 224 (ImageNet)')
    parser.add_argument('--proposals', type=int, default=1000, help='RoIs fed to two-stage RoI heads (default 1000)')
    parser.add_argument('--allow-unsupported', action='store_true',
                        help='report operators without a counting rule instead of failing')
    parser.add_argument('--by-op', action='store_true', help='print the per-category breakdown of every target')
    parser.add_argument('--out', help='also write the markdown tables (and notes) to this file')
    parser.add_argument('--json', help='also write the records (all conventions, per-op counts) as JSON')
    parser.add_argument('--no-notes', action='store_true', help='omit the notes under the tables')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.configs and not args.backbones:
        print('nothing to do: give config files/folders/globs and/or --backbones', file=sys.stderr)
        return 2
    records_det, records_bb, failed = [], [], 0
    specs = []
    for spec in args.backbones or []:
        if spec == 'all':
            specs += [f'{b}-{d}' for d in (50, 101) for b in ALL_BACKBONES]
        else:
            specs.append(spec)
    for spec in specs:
        t0 = time.time()
        try:
            rec = complexity_of_backbone(spec, parse_shape(args.backbone_shape, (224, 224)), args.with_head,
                                         args.allow_unsupported)
        except Exception as err:  # one bad target must not hide the others
            failed += 1
            rec = dict(name=spec, error=f'{type(err).__name__}: {err}')
        print(f'[{time.time() - t0:5.1f}s] {spec}: ' + (rec.get('error') or
              f'{rec["params"] / 1e6:.3f} M params, ' +
              ', '.join(f'{k} {v / 1e9:.3f} G' for k, v in rec['flops'].items())), file=sys.stderr)
        records_bb.append(rec)
    for path in collect_configs(args.configs):
        t0 = time.time()
        try:
            rec = complexity_of_config(path, parse_shape(args.shape, (1280, 800)), args.proposals,
                                       args.cfg_options, args.allow_unsupported)
        except Exception as err:
            failed += 1
            rec = dict(config=path, name=osp.splitext(osp.basename(path))[0], error=f'{type(err).__name__}: {err}')
        print(f'[{time.time() - t0:5.1f}s] {path}: ' + (rec.get('error') or
              f'{rec["params"] / 1e6:.2f} M params, ' +
              ', '.join(f'{k} {v / 1e9:.2f} G' for k, v in rec['flops'].items())), file=sys.stderr)
        records_det.append(rec)
    records_det.sort(key=_detector_sort_key)
    parts = []
    if records_bb:
        parts.append(backbone_table(records_bb))
    if records_det:
        parts.append(detector_table(records_det))
        reconciliation = reconciliation_table(records_det)
        if reconciliation:
            parts.append(reconciliation)
    if args.by_op:
        parts += [by_op_table(r) for r in records_bb + records_det if 'error' not in r]
    if not args.no_notes:
        parts.append(NOTES)
    text = '\n\n'.join(parts)
    print(text)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(text + '\n')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(dict(backbones=records_bb, detectors=records_det), f, indent=1)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
