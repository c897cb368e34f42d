"""The papers' complexity numbers, reproduced from ours: the counting of mmdet v1/v2 (mmcv 1.x).

ECA-Net (Table 5), EPSANet (README) and the PytorchInsight README (SGE) counted with mmcv 1.x's
module-hook counter (``get_model_complexity_info``), which differs from mmengine's tracer:

* only ``nn`` modules are counted: convolutions (MACs plus bias adds), Linear (MACs), BatchNorm and
  other norms (1 per element, 2 with affine), ``nn.ReLU`` (1 per element), ``nn`` pooling layers
  (1 per input element); functional calls (sigmoid gates, products, residual adds, ``F.relu``,
  ``F.interpolate``, RoIAlign) count nothing;
* the attention's global average / max pools over H, W are counted as the official codes'
  ``nn.AdaptiveAvgPool2d`` / ``nn.AdaptiveMaxPool2d`` are (1 per input element);
* parameters are the trainable ones (frozen stages are skipped).

:func:`analyze_mmcv1` counts that way on the trace of mmattn's modules. :func:`eca_v1_estimate` then
applies the three protocol differences of ECA-Net's mmdet v1 (81-class heads, the mask head's
transposed conv counted at its output resolution, SE without FC biases) and
:func:`reconciliation_table` compares every row with the published one read from the metafiles. The
explanation of every remaining difference is ``docs/complexity.md``.
"""
import math
import re
from collections import Counter, OrderedDict
from typing import List, Optional, Sequence

import torch
from torch import nn

from . import metafile
from .complexity import _numel, _shape, backbone_inputs, detector_inputs
from .names import backbone_label, detector_label

ECA_TABLE5 = 'ECA-Net Table 5'
#: categories counted only where the op runs inside one of these nn module types (mmcv 1.x hooks)
MODULE_CATEGORIES = {
    'relu@': (nn.ReLU, ),
    'pool@': (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
              nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d),
}


def _conv(inputs, outputs):
    from mmengine.analysis.jit_handles import conv_flop_jit
    counts = Counter(conv_flop_jit(inputs, outputs))  # {'conv': MACs}
    if _shape(inputs[2]) is not None:
        counts['conv_bias'] = _numel(outputs[0])
    if inputs[6].toIValue():  # transposed: mmdet v1's counter took MACs at every OUTPUT position
        w_shape, out_shape = _shape(inputs[1]), _shape(outputs[0])
        at_output = out_shape[0] * math.prod(w_shape) * math.prod(out_shape[2:])
        counts['deconv_at_output_extra'] = at_output - counts['conv']  # diagnostic, not in the total
    return counts


def _norm(affine_index):
    return lambda inputs, outputs: Counter(
        {'norm': _numel(inputs[0]) * (2 if _shape(inputs[affine_index]) is not None else 1)})


def _category(name, per='input'):
    return lambda inputs, outputs: Counter({name: _numel(inputs[0] if per == 'input' else outputs[0])})


def _global_pool(inputs, outputs):
    """mean / amax over the last two dims of a >= 4-D tensor: a global pool of the attention."""
    shape = _shape(inputs[0])
    dims = inputs[1].toIValue()
    if dims is None and inputs[1].node().kind() == 'prim::ListConstruct':
        dims = [v.toIValue() for v in inputs[1].node().inputs()]
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if shape and len(shape) >= 4 and None not in dims and sorted(d % len(shape) for d in dims) == \
            [len(shape) - 2, len(shape) - 1]:
        return Counter({'global_pool': math.prod(shape)})
    return Counter()


def mmcv1_handles() -> dict:
    from mmengine.analysis.jit_handles import (addmm_flop_jit, batchnorm_flop_jit, bmm_flop_jit, einsum_flop_jit,
                                               linear_flop_jit, matmul_flop_jit)
    handles = {
        'aten::_convolution': _conv,
        'aten::linear': lambda i, o: Counter({'linear': linear_flop_jit(i, o)}),
        'aten::addmm': lambda i, o: Counter({'linear': addmm_flop_jit(i, o)}),
        'aten::matmul': lambda i, o: Counter({'matmul': matmul_flop_jit(i, o)}),
        'aten::mm': lambda i, o: Counter({'matmul': matmul_flop_jit(i, o)}),
        'aten::bmm': lambda i, o: Counter({'matmul': bmm_flop_jit(i, o)}),
        'aten::einsum': lambda i, o: Counter({'matmul': einsum_flop_jit(i, o)}),
        'aten::batch_norm': lambda i, o: Counter({'norm': batchnorm_flop_jit(i, o)}),
        'aten::group_norm': _norm(2),
        'aten::layer_norm': _norm(2),
        'aten::instance_norm': _norm(1),
        'aten::relu': _category('relu@', 'output'),
        'aten::relu_': _category('relu@', 'output'),
        'aten::mean': _global_pool,
        'aten::amax': _global_pool,
    }
    for op in ('max_pool2d', 'avg_pool2d', 'adaptive_avg_pool2d', 'adaptive_max_pool2d'):
        handles[f'aten::{op}'] = _category('pool@')
    return handles


def analyze_mmcv1(model: nn.Module, inputs) -> dict:
    """``dict(flops, trainable_params, by_category)`` as mmcv 1.x's counter gives them (module doc).
    Operators without a handle here count nothing, as functional calls did for that counter."""
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.clear_op_handles()
    analyzer.set_op_handle(**mmcv1_handles())
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        raw = Counter(analyzer.by_operator())
    per_module = analyzer.by_module_and_operator()
    seen = set()
    for name, module in model.named_modules():
        canonical = analyzer.canonical_module_name(name)
        if canonical in seen:
            continue
        seen.add(canonical)
        for cat, types in MODULE_CATEGORIES.items():
            if isinstance(module, types):
                raw[cat[:-1]] += per_module[canonical].get(cat, 0)
    total = sum(n for cat, n in raw.items() if not cat.endswith(('@', '_extra')))
    return dict(flops=int(total), by_category={k: int(v) for k, v in sorted(raw.items())},
                trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad))


def _v1_heads(detector: nn.Module, num_proposals: int) -> dict:
    """What mmdet v1's heads had in addition (the background class in the class-specific box regressor
    and mask logits) and the trainable SE FC biases (ECA-Net's SE had none)."""
    info = {}
    roi = getattr(detector, 'roi_head', None)
    bbox_head = getattr(roi, 'bbox_head', None)
    if isinstance(getattr(bbox_head, 'fc_reg', None), nn.Linear) and not bbox_head.reg_class_agnostic:
        info['reg_in'] = bbox_head.fc_reg.in_features
    mask_head = getattr(roi, 'mask_head', None)
    logits = getattr(mask_head, 'conv_logits', None)
    if isinstance(logits, nn.Conv2d) and not mask_head.class_agnostic:
        size = roi.mask_roi_extractor.roi_layers[0].output_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        scale = int(getattr(mask_head, 'scale_factor', 1) or 1) if mask_head.upsample is not None else 1
        info.update(mask_in=logits.in_channels, mask_hw=size[0] * scale * size[1] * scale,
                    mask_rois=min(100, num_proposals))
    info['se_bias'] = sum(p.numel() for n, p in detector.named_parameters()
                          if p.requires_grad and re.search(r'\.se\.fc\.\d+\.bias$', n))
    return info


def eca_v1_estimate(rec: dict):
    """Our ``mmcv1`` count moved to ECA-Net's mmdet v1 protocol: + the 81st class of the box regressor
    (4 outputs) and mask logits (1 channel), + the mask head's transposed conv counted at its output
    resolution, - the SE FC biases. Returns ``(params, flops, parts)``."""
    info, proposals = rec['v1_heads'], rec['proposals'] or 0
    parts = OrderedDict()
    parts['81-class heads params'] = (4 * (info['reg_in'] + 1) if 'reg_in' in info else 0) + \
        (info['mask_in'] + 1 if 'mask_in' in info else 0)
    parts['SE FC biases'] = -info['se_bias']
    parts['81-class heads FLOPs'] = (proposals * info['reg_in'] * 4 if 'reg_in' in info else 0) + \
        (info['mask_rois'] * info['mask_hw'] * (info['mask_in'] + 1) if 'mask_in' in info else 0)
    parts['deconv at output res.'] = rec['mmcv1_by_category'].get('deconv_at_output_extra', 0)
    params = rec['mmcv1_params'] + parts['81-class heads params'] + parts['SE FC biases']
    flops = rec['mmcv1'] + parts['81-class heads FLOPs'] + parts['deconv at output res.']
    return params, flops, parts


def detector_record(path: str, shape=(1280, 800), num_proposals: int = 1000, cfg_options=None) -> dict:
    """mmcv1 count of a detector config, with what :func:`eca_v1_estimate` needs."""
    wrapper, inputs, info = detector_inputs(path, shape, num_proposals, cfg_options)
    res = analyze_mmcv1(wrapper, inputs)
    return dict(info, mmcv1=res['flops'], mmcv1_params=res['trainable_params'],
                mmcv1_by_category=res['by_category'], v1_heads=_v1_heads(wrapper.detector, num_proposals),
                params=sum(p.numel() for p in wrapper.parameters()))


def backbone_record(spec: str, shape=(224, 224), with_head: bool = True) -> dict:
    model, inputs, info = backbone_inputs(spec, shape, with_head)
    res = analyze_mmcv1(model, inputs)
    return dict(info, mmcv1=res['flops'], mmcv1_params=res['trainable_params'],
                params=sum(p.numel() for p in model.parameters()))


def _published(rec: dict, task: str, source: Optional[str] = None) -> List[dict]:
    """Published complexity entries of the model of ``rec``, when ``rec`` was counted at their input
    (and, for detectors, with COCO's 80 classes)."""
    detector = detector_label(rec['detector']) if 'detector' in rec else None
    model = metafile.find_model(rec['backbone'], rec['depth'], detector, task=task)
    if model is None or ('detector' in rec and rec.get('num_classes') != 80):
        return []
    entries = []
    for e in metafile.published(model, source):
        size = [int(v) for v in re.findall(r'\d+', str(e.get('Input', '')).split(',')[0])]
        head = 'head' not in str(e.get('Input', '')) or rec.get('with_head')
        if e.get('Task') == task and 'Parameters (M)' in e and sorted(size) == sorted(rec['shape']) and head:
            entries.append(e)
    return entries


def detector_table(records: Sequence[dict]) -> str:
    lines = ['| config | params (M) all / trainable | GFLOPs mmcv1 | published params (M) / GFLOPs | source |',
             '|---|---|---|---|---|']
    for rec in records:
        task = 'Instance Segmentation' if rec['detector'] == 'MaskRCNN' else 'Object Detection'
        pubs = _published(rec, task)
        lines.append(f'| {rec["name"]} | {rec["params"] / 1e6:.2f} / {rec["mmcv1_params"] / 1e6:.2f} | '
                     f'{rec["mmcv1"] / 1e9:.2f} | '
                     + ('; '.join(f'{e["Parameters (M)"]:.2f} / {e["GFLOPs"]:.2f}' for e in pubs) or '–')
                     + ' | ' + ('; '.join(e['Source'] for e in pubs) or '–') + ' |')
    return '\n'.join(lines)


def reconciliation_table(records: Sequence[dict]) -> str:
    """ECA-Net Table 5 rows: our count converted step by step to the paper's protocol."""
    lines = [f'Reconciliation with {ECA_TABLE5} (mmdet v1): ours moved to its protocol', '',
             '| config | ours trainable (M) | + 81-class heads | - SE FC biases | = params (M) | paper | '
             'ours mmcv1 GFLOPs | + 81-class heads | + deconv at 28x28 | = GFLOPs | paper | match |',
             '|' + '---|' * 12]
    for rec in records:
        task = 'Instance Segmentation' if rec['detector'] == 'MaskRCNN' else 'Object Detection'
        pubs = _published(rec, task, ECA_TABLE5)
        if not pubs or sorted(rec['shape']) != [800, 1280]:
            continue
        params, flops, parts = eca_v1_estimate(rec)
        pp, pg = pubs[0]['Parameters (M)'], pubs[0]['GFLOPs']
        match = 'yes' if (round(params / 1e6, 2), round(flops / 1e9, 2)) == (pp, pg) else 'no'
        lines.append(
            f'| {rec["name"]} | {rec["mmcv1_params"] / 1e6:.4f} | {parts["81-class heads params"]:+,} | '
            f'{parts["SE FC biases"]:+,} | {params / 1e6:.2f} | {pp:.2f} | {rec["mmcv1"] / 1e9:.3f} | '
            f'{parts["81-class heads FLOPs"] / 1e9:+.3f} | {parts["deconv at output res."] / 1e9:+.3f} | '
            f'{flops / 1e9:.2f} | {pg:.2f} | {match} |')
    return '\n'.join(lines) if len(lines) > 4 else ''


def backbone_table(records: Sequence[dict]) -> str:
    """Backbones at 224 with the ImageNet head, mmcv1 count in both units, published beside."""
    lines = ['| backbone | params | params (2^20) | GFLOPs mmcv1 | mmcv1 (2^30) | published params / GFLOPs '
             '(units, source) |', '|---|---|---|---|---|---|']
    for rec in records:
        pubs = _published(rec, 'Image Classification') if rec.get('with_head') else []
        paper = '; '.join(f'{e["Parameters (M)"]}M / {e.get("GFLOPs", "–")}G ({e["Units"]}, {e["Source"]})'
                          for e in pubs) or '–'
        lines.append(f'| {backbone_label(rec["backbone"], rec["depth"])} | {rec["params"]:,} | '
                     f'{rec["params"] / 2**20:.2f} | {rec["mmcv1"] / 1e9:.3f} | {rec["mmcv1"] / 2**30:.3f} | '
                     f'{paper} |')
    return '\n'.join(lines)
