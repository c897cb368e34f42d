"""Device check: are mmattn's fused paths correct and faster than the plain formulas on a device?

Runs with torch alone (no mmcv/mmengine/mmdet), on the networks of :mod:`mmattn.nets`, whose blocks end
with the same door as the mmdet backbones (:func:`mmattn.fused.gated_residual`, and
:func:`mmattn.fused.fused_forward` for EPSANet's PSA). CLI: ``tools/analysis_tools/device_check.py``.

**Correctness.** Subjects: every attention layer as a block tail (1x1 conv -> BN -> ``identity +
gate(.)`` through the door; PSA through its fused forward) and a ResNet-50 of every family. Each runs
with the fused paths on (``fused(True)``) and off (``fused(False)``), in float32, under autocast float16
(the loss scaled by ``torch.amp.GradScaler`` as mmengine's ``AmpOptimWrapper`` does) and bfloat16, in
NCHW and channels-last, in three modes: ``train`` (train-mode BN, forward + backward), ``eval``
(eval-mode BN, forward + backward, e.g. a frozen-BN backbone being fine-tuned) and ``infer``
(``torch.inference_mode``). Compared: the outputs, the input gradient, every parameter gradient and,
in ``train``, the BN running statistics after the step. Both runs are compared with a float64 run of
the plain formulas (same weights and input). With ``e(t) = min(||t - ref|| / ||ref||, 1)`` (L2 norms;
1: no correct digit; a non-finite value fails) and the tensors in four groups (outputs, input gradient,
parameter gradients, BN statistics), the fused run passes when in every group both the largest and the
root-mean-square ``e`` over the group's tensors satisfy::

    e(fused) <= 2 * e(plain) + ATOL[dtype]

i.e. the fused paths add no more error than the plain formulas already make in that dtype (the rule of
FlashAttention's tests; TF32 convolutions on CUDA are thus accounted for too). Groups rather than single
tensors: in a deep network under AMP a ReLU or max that flips on a rounding moves single tensors'
errors by several times at random (in either run), while a wrong formula moves the group's largest
error to order 1 and a systematic loss of precision moves its mean. A network's gradients get
``sqrt(16 / N_min)`` more (:data:`FLIPS`; N_min: elements of its smallest output map): a single such
flip moves every gradient upstream of it by about ``1 / sqrt(N)``, even in float32; the layer rows,
without it, are the strict test of the formulas.
Parameters whose entries are all equal at init (BN affine, SA/SGE gate parameters, CBAM's spatial BN)
are perturbed first so every gate depends on its input, and the BN statistics are calibrated on the
input, so eval mode sees normalised maps.

**Speed and memory.** ResNet-50 of every family, fused and plain, and the plain ResNet-50 in the same
interleaved rounds (:mod:`mmattn.analysis.timing`): inference and a training step (forward, backward,
SGD step; with the loss scaler under float16 autocast), in float32 and AMP (float16 on CUDA, bfloat16 on
CPU), NCHW. Reported per group: milliseconds per iteration, the speed relative to ResNet-50 and of the
fused relative to the plain run of the same model (medians of per-round ratios, > 1: faster), and on
CUDA the peak memory of one step above the resident weights, relative to ResNet-50's.

Results go to ``device_check.json`` and ``device_check.md`` in ``--out-dir``, rewritten after every
finished part, so a run stopped by ``--time-budget`` or by its host still leaves what it measured; a
part or a model that raises (a fused form failing on the device, out of memory) is recorded as such and
the run goes on.
"""
import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import platform
import sys
import time
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..fused import fused, fused_forward, gated_residual
from ..layers import PSAModule, create_attention
from ..nets import FAMILIES, build_resnet
from .timing import interleaved_rounds, paired_ratio, peak_memory

DTYPES = ('float32', 'float16', 'bfloat16')
LAYOUTS = ('nchw', 'channels_last')
MODES = ('train', 'eval', 'infer')
#: absolute part of the tolerance, in units of the reference's largest value (about one unit in the last
#: place of a value of that size)
ATOL = {'float32': 1e-5, 'float16': 1e-3, 'bfloat16': 8e-3}
#: how much of the plain formulas' own error the fused paths may add
ERROR_FACTOR = 2.0
#: a network's gradients may differ by this many ReLU / max decisions flipped by a rounding in its
#: smallest map: one flip among a map's N elements moves the relative error of every gradient upstream of
#: it by about 1 / sqrt(N), in any dtype. So ``sqrt(FLIPS / N_min)`` is added to the tolerance of a
#: network's gradients (0.006 for ResNet-50 at batch 4, 224 x 224; 0.03 at batch 2, 64 x 64); the layer
#: rows, whose gradients have no such decisions before them, have no such allowance
FLIPS = 16
#: the attention layers, as configured in the backbones (ECA at one of its released kernel sizes)
LAYERS = {
    'se': FAMILIES['se']['attention'],
    'eca': dict(type='eca', kernel_size=5),
    'sa': FAMILIES['sa']['attention'],
    'cbam': FAMILIES['cbam']['attention'],
    'sge': FAMILIES['sge']['attention'],
    'psa': FAMILIES['epsanet']['psa'],
}
ATTENTION_FAMILIES = tuple(f for f in FAMILIES if f != 'resnet')

#: sizes per preset. layer: (B, C, H, W) of a gate's input (PSA: C // 2 channels); net: (B, H, W) of the
#: correctness networks' input; speed: (B, H, W) of each speed group; rounds/iters/warmup: the timing
#: protocol; net_kwargs: ``build_resnet`` arguments of every network (none: ResNet-50), net_overrides:
#: per family. ``smoke`` runs every code path in seconds on a narrow one-block-per-stage network (base
#: width 8; SA/SGE with 16 groups, PSA with groups (1, 2, 2, 2) and reduction 2 to fit its width); its
#: figures mean nothing.
PRESETS = {
    'full': dict(layer=(8, 256, 56, 56), net=(4, 224, 224), speed=((32, 224, 224), (2, 800, 1333)),
                 rounds=5, iters=4, warmup=3),
    'quick': dict(layer=(4, 256, 28, 28), net=(2, 128, 128), speed=((32, 224, 224), ), rounds=3, iters=3,
                  warmup=2),
    'cpu': dict(layer=(2, 256, 14, 14), net=(2, 64, 64), speed=((2, 128, 128), (1, 192, 320)), rounds=3,
                iters=2, warmup=1),
    'smoke': dict(layer=(2, 128, 6, 6), net=(2, 64, 64), speed=((1, 64, 64), ), rounds=2, iters=1, warmup=0,
                  net_kwargs=dict(base_channels=8, stage_blocks=(1, 1, 1, 1)),
                  net_overrides=dict(sa=dict(attention=dict(type='sa', groups=16)),
                                     sge=dict(attention=dict(type='sge', groups=16)),
                                     epsanet=dict(psa=dict(conv_kernels=(3, 5, 7, 9),
                                                           conv_groups=(1, 2, 2, 2), reduction=2)))),
}


def preset_network(preset: dict, family: str) -> nn.Module:
    """The network of ``family`` at ``preset``'s width and depth (ResNet-50 unless the preset says)."""
    kwargs = {**preset.get('net_kwargs', {}), **preset.get('net_overrides', {}).get(family, {})}
    return build_resnet(family, 50, **kwargs)


# ----------------------------------------------------------------------------------------- subjects
class GateTail(nn.Module):
    """A block's tail around one gate: ``x + gate(bn(conv(x)))`` through :func:`gated_residual`, with the
    BN output handed over as the blocks do (``overwrite_x``, ``bn``, ``bn_input``)."""

    def __init__(self, channels: int, attention: dict):
        super().__init__()
        cfg = dict(attention)
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.gate = create_attention(cfg.pop('type'), channels, **cfg)

    def forward(self, x):
        u = self.conv(x)
        return (gated_residual(self.gate, self.bn(u), x, overwrite_x=True, bn=self.bn, bn_input=u), )


class PSAUnit(nn.Module):
    """EPSANet's PSA module through :func:`fused_forward`, as the EPSANet blocks call their conv2."""

    def __init__(self, channels: int, psa: dict):
        super().__init__()
        self.psa = PSAModule(channels, channels, **psa)

    def forward(self, x):
        return (fused_forward(self.psa, x), )


def _perturb_constants(model: nn.Module, gen: torch.Generator) -> None:
    """Add N(0, 0.5^2) noise to every parameter whose entries are all equal (init constants)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() == 1 or bool((p == p.flatten()[0]).all()):
                p.add_(torch.randn(p.shape, generator=gen) * 0.5)


def _calibrate_bn(model: nn.Module, x: torch.Tensor) -> None:
    """Running statistics := the statistics of ``x``'s activations (two train-mode passes, cumulative)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad(), fused(False):
        model(x)
        model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


class Subject:
    """A module to check, its input and the weights of its loss (a fixed projection of every output), on
    ``device`` (drawn on the CPU, so the same seed gives the same subject on every device)."""

    def __init__(self, kind: str, name: str, model: nn.Module, x: torch.Tensor, seed: int,
                 device: torch.device = torch.device('cpu')):
        gen = torch.Generator().manual_seed(seed)
        _perturb_constants(model, gen)
        model, x = model.to(device), x.to(device)
        _calibrate_bn(model, x)
        self.kind, self.name, self.model, self.x = kind, name, model, x
        self.state = copy.deepcopy(model.state_dict())
        with torch.no_grad(), fused(False):
            outs = model.eval()(x)
        self.proj = [torch.randn(o.shape, generator=gen).to(device) for o in outs]
        self.min_map = min(o.numel() for o in outs)


def layer_subject(name: str, shape: Sequence[int], seed: int = 0,
                  device: torch.device = torch.device('cpu')) -> Subject:
    """The block tail of attention layer ``name`` (a key of :data:`LAYERS`) for input ``shape`` (B, C, H, W);
    PSA: the module alone, on C / 2 channels."""
    b, c, h, w = shape
    seed += list(LAYERS).index(name)
    torch.manual_seed(seed)
    model = PSAUnit(c // 2, LAYERS[name]) if name == 'psa' else GateTail(c, LAYERS[name])
    x = torch.randn(b, c // 2 if name == 'psa' else c, h, w)
    return Subject('layer', name, model, x, seed, device)


def net_subject(family: str, preset: dict, seed: int = 0,
                device: torch.device = torch.device('cpu')) -> Subject:
    """The network of ``family`` (:func:`preset_network`), with a batch of ``preset['net']`` images."""
    torch.manual_seed(seed)
    model = preset_network(preset, family)
    b, h, w = preset['net']
    return Subject('net', family, model, torch.randn(b, 3, h, w), seed, device)


# ------------------------------------------------------------------------------------- correctness
def _autocast(device: torch.device, dtype: str):
    if dtype == 'float32':
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, dtype))


def run_subject(subject: Subject, device: torch.device, *, dtype: str, layout: str, mode: str,
                fused_on: Optional[bool], reference: bool = False) -> Dict[str, torch.Tensor]:
    """One forward (and, unless ``mode == 'infer'``, backward) of ``subject``; the tensors to compare,
    as float64. ``reference``: in float64 (``dtype`` ignored), plain formulas."""
    model = subject.model
    model.load_state_dict(subject.state)
    model.to(device=device, dtype=torch.float64 if reference else torch.float32)
    fmt = torch.channels_last if layout == 'channels_last' else torch.contiguous_format
    model.to(memory_format=fmt)
    model.train(mode == 'train')
    model.zero_grad(set_to_none=True)
    # a fresh leaf every run (``to`` alone may return subject.x itself)
    x = subject.x.to(device=device, dtype=torch.float64 if reference else torch.float32, copy=True)
    x = x.contiguous(memory_format=fmt).detach()
    amp = contextlib.nullcontext() if reference else _autocast(device, dtype)
    result = {}
    with fused(False if reference else fused_on):
        if mode == 'infer':
            with torch.inference_mode(), amp:
                outs = model(x)
            for i, o in enumerate(outs):
                result[f'out{i}'] = o.double()
            return result
        x.requires_grad_()
        with amp:
            outs = model(x)
        loss = sum((o.double() * p.to(device)).mean() for o, p in zip(outs, subject.proj))
        scaler = None
        if dtype == 'float16' and not reference:
            # as mmengine's AmpOptimWrapper(loss_scale='dynamic'): scaled backward, gradients unscaled
            scaler = torch.amp.GradScaler(device.type)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            x_grad = x.grad / scaler.get_scale()
        else:
            loss.backward()
            x_grad = x.grad
    for i, o in enumerate(outs):
        result[f'out{i}'] = o.detach().double()
    result['grad:input'] = x_grad.double()
    for name, p in model.named_parameters():
        if p.grad is not None:
            result[f'grad:{name}'] = p.grad.double()
    if mode == 'train':
        for name, buf in model.named_buffers():
            if buf.is_floating_point():
                result[f'buffer:{name}'] = buf.detach().double().clone()
    return result


def relative_error(t: torch.Tensor, ref: torch.Tensor) -> float:
    """min(||t - ref|| / ||ref||, 1) (L2; inf where t has a non-finite value).

    Capped at 1, "no correct digit": beyond it a tensor (e.g. the gradient of a parameter shared by many
    channels, a sum that nearly cancels) is noise in that dtype, in the plain run as well, and a larger
    error says nothing more about the fused path.
    """
    if not bool(torch.isfinite(t).all()):
        return float('inf')
    scale = ref.norm().item()
    return min((t - ref).norm().item() / (scale if scale > 0 else 1.0), 1.0)


def _group(name: str) -> str:
    if name.startswith('out'):
        return 'outputs'
    if name == 'grad:input':
        return 'input gradient'
    return 'parameter gradients' if name.startswith('grad:') else 'BN statistics'


def compare(fused_run: Dict[str, torch.Tensor], plain_run: Dict[str, torch.Tensor],
            ref: Dict[str, torch.Tensor], dtype: str, grad_floor: float = 0.0) -> dict:
    """The worst group statistic by ``e(fused) / (2 e(plain) + ATOL)`` (see the module docstring), with
    the tensor of largest ``e(fused)`` in that group; passes when the score is <= 1. ``grad_floor`` is
    added to the tolerance of the gradient groups (see :data:`FLIPS`)."""
    missing = sorted(set(ref) ^ set(fused_run)) + sorted(set(ref) ^ set(plain_run))
    if missing:
        return dict(status='fail', reason=f'tensors differ between runs: {missing[:4]}', score=float('inf'))
    groups: Dict[str, list] = {}
    for name in ref:
        groups.setdefault(_group(name), []).append(
            (relative_error(fused_run[name], ref[name]), relative_error(plain_run[name], ref[name]), name))
    statistics = {'max': max, 'rms': lambda v: (sum(e * e for e in v) / len(v))**0.5}
    worst = None
    for group, items in groups.items():
        for stat, fn in statistics.items():
            e_fused, e_plain = fn([i[0] for i in items]), fn([i[1] for i in items])
            tol = ERROR_FACTOR * e_plain + ATOL[dtype] + (grad_floor if 'gradient' in group else 0.0)
            score = e_fused / tol
            if worst is None or score > worst['score']:
                worst = dict(score=score, group=group, statistic=stat, e_fused=e_fused, e_plain=e_plain,
                             tol=tol, tensor=max(items)[2])
    worst['status'] = 'pass' if worst['score'] <= 1 else 'fail'
    return worst


def dtype_support(device: torch.device) -> Dict[str, Optional[str]]:
    """dtype -> None where autocast (and its loss scaler) runs a conv + BN + linear forward and backward on
    ``device``, else the reason it does not."""
    support = {'float32': None}
    for dtype in DTYPES[1:]:
        try:
            m = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(),
                              nn.Linear(64, 2)).to(device)
            x = torch.randn(2, 4, 4, 4, device=device, requires_grad=True)
            with _autocast(device, dtype):
                loss = m(x).float().sum()
            if dtype == 'float16':
                torch.amp.GradScaler(device.type).scale(loss).backward()
            else:
                loss.backward()
            support[dtype] = None
        except Exception as err:  # the reason is reported in the table
            support[dtype] = f'autocast {dtype} on {device.type}: {type(err).__name__}: {err}'.splitlines()[0]
    return support


def check_subject(subject: Subject, device: torch.device, support: Dict[str, Optional[str]],
                  dtypes=DTYPES, layouts=LAYOUTS, modes=MODES) -> List[dict]:
    """Rows of the correctness table for one subject."""
    rows = []
    refs = {}
    for mode in ('train', 'eval'):
        refs[mode] = run_subject(subject, device, dtype='float32', layout='nchw', mode=mode, fused_on=False,
                                 reference=True)
    refs['infer'] = {k: v for k, v in refs['eval'].items() if k.startswith('out')}
    for dtype in dtypes:
        for layout in layouts:
            for mode in modes:
                row = dict(kind=subject.kind, name=subject.name, dtype=dtype, layout=layout, mode=mode)
                if support.get(dtype):
                    row.update(status='skipped', reason=support[dtype])
                else:
                    runs = {}
                    for label, on in (('fused', True), ('plain', False)):
                        try:
                            runs[label] = run_subject(subject, device, dtype=dtype, layout=layout, mode=mode,
                                                      fused_on=on)
                        except Exception as err:
                            runs[label] = f'{label} run raised {type(err).__name__}: {err}'.splitlines()[0]
                    if isinstance(runs['plain'], str):  # the plain formulas themselves do not run here
                        row.update(status='skipped', reason=runs['plain'])
                    elif isinstance(runs['fused'], str):
                        row.update(status='fail', reason=runs['fused'], score=float('inf'))
                    else:
                        floor = (FLIPS / subject.min_map)**0.5 if subject.kind == 'net' else 0.0
                        row.update(compare(runs['fused'], runs['plain'], refs[mode], dtype, floor))
                rows.append(row)
    return rows


# -------------------------------------------------------------------------------------------- speed
def _speed_steps(models: Dict[str, nn.Module], device: torch.device, batch: torch.Tensor, precision: str,
                 mode: str) -> Dict[str, callable]:
    """name -> one iteration. Names are ``family`` (ResNet) or ``family/fused`` and ``family/plain``."""
    steps = {}
    amp_dtype = None if precision == 'float32' else precision
    for family, model in models.items():
        model.train(mode == 'train')
        variants = ([(family, None)] if family == 'resnet' else
                    [(f'{family}/fused', True), (f'{family}/plain', False)])
        optimizer = scaler = None  # inference
        if mode == 'train':  # SGD as mmdet's schedules; float16: the loss scaler of AmpOptimWrapper
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
            scaler = torch.amp.GradScaler(device.type) if amp_dtype == 'float16' else None
        for name, on in variants:

            def step(model=model, on=on, optimizer=optimizer, scaler=scaler):
                ctx = _autocast(device, amp_dtype) if amp_dtype else contextlib.nullcontext()
                with fused(on):
                    if optimizer is None:
                        with torch.inference_mode(), ctx:
                            model(batch)
                        return
                    optimizer.zero_grad(set_to_none=True)
                    with ctx:
                        loss = sum(o.float().mean() for o in model(batch))
                    if scaler is None:
                        loss.backward()
                        optimizer.step()
                    else:
                        scaler.scale(loss).backward()
                        scaler.step(optimizer)
                        scaler.update()

            steps[name] = step
    return steps


def speed_group(models: Dict[str, nn.Module], device: torch.device, size: Sequence[int], precision: str,
                mode: str, rounds: int, iters: int, warmup: int, deadline: Optional[float]) -> List[dict]:
    """Rows of one speed group (all models at one size, precision and mode). A model whose step raises
    gets a row with the error instead of figures (ResNet-50's error fails the group)."""
    b, h, w = size
    batch = torch.randn(b, 3, h, w, device=device)
    steps = _speed_steps(models, device, batch, precision, mode)
    rows = []
    for name, step in list(steps.items()):
        try:
            step()
        except Exception as err:  # reported in the table, e.g. a fused form that fails on this device
            family, _, variant = name.partition('/')
            message = f'{type(err).__name__}: {err}'.splitlines()[0]
            rows.append(dict(size=f'{b}x{h}x{w}', precision=precision, mode=mode, model=family,
                             variant=variant or 'plain', error=message))
            del steps[name]
            if device.type == 'cuda':
                torch.cuda.empty_cache()
    if 'resnet' not in steps:
        raise RuntimeError(f'ResNet-50 baseline failed: {rows[0]["error"]}')
    times = interleaved_rounds(steps, device, rounds, iters, warmup, deadline)
    memory = {name: peak_memory(step, device) for name, step in steps.items()}
    base = times['resnet']
    for name, series in times.items():
        family, _, variant = name.partition('/')
        row = dict(size=f'{b}x{h}x{w}', precision=precision, mode=mode, model=family,
                   variant=variant or 'plain', ms=1e3 * sorted(series)[len(series) // 2], rounds=len(series),
                   vs_resnet=paired_ratio(base, series))
        if variant == 'fused' and f'{family}/plain' in times:
            row['fused_vs_plain'] = paired_ratio(times[f'{family}/plain'], series)
        if memory[name] is not None:
            row['peak_mb'] = memory[name] / 2**20
            row['mem_vs_resnet'] = memory[name] / memory['resnet']
        rows.append(row)
    return rows


def compile_group(models: Dict[str, nn.Module], device: torch.device, size: Sequence[int], precision: str,
                  rounds: int, iters: int, warmup: int, deadline: Optional[float]) -> List[dict]:
    """Inference of every model under ``torch.compile`` (which takes the plain formulas) vs ResNet-50's."""
    b, h, w = size
    batch = torch.randn(b, 3, h, w, device=device)
    amp_dtype = None if precision == 'float32' else precision
    steps, compile_s = {}, {}
    for family, model in models.items():
        compiled = torch.compile(model.eval())

        def step(compiled=compiled):
            amp = _autocast(device, amp_dtype) if amp_dtype else contextlib.nullcontext()
            with torch.inference_mode(), amp:
                compiled(batch)

        start = time.monotonic()
        step()
        compile_s[family] = time.monotonic() - start
        steps[family] = step
    times = interleaved_rounds(steps, device, rounds, iters, warmup, deadline)
    return [dict(size=f'{b}x{h}x{w}', precision=precision, mode='infer', model=f'{name} (compiled)',
                 variant='plain', ms=1e3 * sorted(s)[len(s) // 2], rounds=len(s), compile_s=compile_s[name],
                 vs_resnet=paired_ratio(times['resnet'], s)) for name, s in times.items()]


# ----------------------------------------------------------------------------------------- reports
def _fmt_ratio(r) -> str:
    return f'{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]'


def markdown(report: dict) -> str:
    """The report as markdown tables."""
    meta = report['meta']
    lines = [f"# Device check: {meta['device_name']}", '',
             f"{meta['started']}, torch {meta['torch']}, preset `{meta['preset']}`, "
             f"{meta['elapsed_s']:.0f} s{'' if meta['finished'] else ' (unfinished: partial results)'}. "
             f"Command: `{meta['command']}`", '']
    cells = {}
    order = []
    for row in report['correctness']:
        key = (row['kind'], row['name'], row['dtype'], row['layout'])
        if key not in cells:
            order.append(key)
            cells[key] = {}
        if row['status'] == 'skipped':
            cell = f"skipped ({row['reason']})"
        elif row['status'] == 'pass':
            cell = f"pass {row['score']:.2f}"
        else:
            where = row.get('tensor', row.get('reason', ''))
            cell = (f"**FAIL** {row.get('score', float('inf')):.2f} "
                    f"{row.get('statistic', '')} {row.get('group', '')} ({where})")
        cells[key][row['mode']] = cell
    lines += ['## Correctness: fused vs plain', '',
              f'Cell: the worst of e(fused) / ({ERROR_FACTOR:g} e(plain) + atol) over the groups (outputs, '
              'input gradient, parameter gradients, BN statistics) and over their largest and RMS e, '
              'e = min(||t - ref|| / ||ref||, 1) against the float64 plain run; pass <= 1. atol: '
              + ', '.join(f'{k} {v:g}' for k, v in ATOL.items())
              + f'; networks\' gradients: + sqrt({FLIPS} / elements of the smallest output map) (ReLU/max '
              'decisions flipped by a rounding).', '',
              '| subject | dtype | layout | ' + ' | '.join(MODES) + ' |',
              '|---|---|---|' + '---|' * len(MODES)]
    for key in order:
        kind, name, dtype, layout = key
        lines.append(f'| {kind} {name} | {dtype} | {layout} | '
                     + ' | '.join(cells[key].get(m, '') for m in MODES) + ' |')
    for note in report.get('skipped_sections', []):
        lines.append(f'\n- skipped: {note}')
    for note in report.get('errors', []):
        lines.append(f'\n- **error**: {note}')
    if report['speed']:
        lines += ['', '## Speed and memory (ResNet-50 per family; NCHW)', '',
                  'Ratios: median over rounds of per-round ratios [lowest, highest]; speed > 1 = faster. '
                  'Memory: peak of one step above the resident weights (CUDA).', '',
                  '| size | precision | mode | model | variant | ms/iter | speed vs ResNet-50 '
                  '| fused vs plain | peak MB | memory vs ResNet-50 |', '|---' * 10 + '|']
        for r in report['speed']:
            if 'error' in r:
                lines.append(f"| {r['size']} | {r['precision']} | {r['mode']} | {r['model']} | "
                             f"{r['variant']} | **error**: {r['error']} | | | | |")
                continue
            fused_vs_plain = _fmt_ratio(r['fused_vs_plain']) if 'fused_vs_plain' in r else ''
            memory = (f"{r['peak_mb']:.0f} | {r['mem_vs_resnet']:.2f}" if 'peak_mb' in r else 'n/a | n/a')
            lines.append(f"| {r['size']} | {r['precision']} | {r['mode']} | {r['model']} | {r['variant']} | "
                         f"{r['ms']:.2f} | {_fmt_ratio(r['vs_resnet'])} | {fused_vs_plain} | {memory} |")
    verdict = report.get('verdict')
    if verdict:
        lines += ['', '## Verdict', '', verdict['text']]
    return '\n'.join(lines) + '\n'


def verdict(report: dict, device_type: str) -> dict:
    """Whether the fused paths may be the default on this device: correct everywhere they were checked and
    not slower (fused vs plain median >= 0.98) in any speed group measured."""
    failed = {f"{r['kind']} {r['name']}" for r in report['correctness'] if r['status'] == 'fail'}
    failed = sorted(failed | {f"{r['model']} ({r['variant']} run: {r['error']})"
                              for r in report['speed'] if 'error' in r})
    fused_rows = [r for r in report['speed'] if r.get('variant') == 'fused' and 'fused_vs_plain' in r]
    slower = sorted({f"{r['model']} ({r['precision']} {r['mode']} {r['size']}: {r['fused_vs_plain'][0]:.2f})"
                     for r in fused_rows if r['fused_vs_plain'][0] < 0.98})
    complete = report['meta']['finished'] and bool(fused_rows) and not report['errors']
    ok = not failed and not slower and complete
    why = []
    if failed:
        why.append('incorrect: ' + ', '.join(failed))
    if slower:
        why.append('slower: ' + ', '.join(slower))
    if not complete:
        why.append('the check did not finish every section')
    if report['meta']['preset'] == 'smoke':
        return dict(fused_default_ok=False, failed=failed, slower=[],
                    text='Preset smoke: a test that every path runs (incorrect: '
                    + (', '.join(failed) or 'none') + '); its sizes are too small for its speed figures to '
                    'decide anything.')
    text = (f'Fused paths on {device_type}: ' + ('correct and not slower anywhere measured: they may be on '
            'by default here.' if ok else 'keep the plain formulas by default (' + '; '.join(why) + ').'))
    return dict(fused_default_ok=ok, failed=failed, slower=slower, text=text)


def _write(report: dict, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for name, text in (('device_check.json', json.dumps(report, indent=1, default=str)),
                       ('device_check.md', markdown(report))):
        tmp = osp.join(out_dir, name + '.tmp')
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, osp.join(out_dir, name))


# ------------------------------------------------------------------------------------------- driver
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check mmattn\'s fused paths against the plain formulas on a device (correctness in '
        'float32/float16/bfloat16, NCHW/channels-last, train/eval/inference) and measure their speed and '
        'memory on ResNet-50 of every family vs the plain ResNet-50. Needs torch only.')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='cuda, cuda:N or cpu (default: cuda where available)')
    parser.add_argument('--out-dir', required=True, help='folder for device_check.json and device_check.md')
    parser.add_argument('--preset', choices=sorted(PRESETS),
                        help='sizes and timing protocol (default: full on CUDA, cpu on CPU)')
    parser.add_argument('--quick', action='store_true',
                        help='a first pass: preset quick on CUDA, smoke on CPU')
    parser.add_argument('--families', default=','.join(ATTENTION_FAMILIES),
                        help=f'comma-separated subset of {",".join(ATTENTION_FAMILIES)} '
                        '(networks and layers)')
    parser.add_argument('--skip', default='', help='comma-separated sections to skip: layers, nets, speed')
    parser.add_argument('--compile', action='store_true',
                        help='also time inference of every model under torch.compile (AMP, first speed size)')
    parser.add_argument('--time-budget', type=float, default=480.0,
                        help='seconds; no new section part starts once it would end past this (default 480)')
    parser.add_argument('--threads', type=int,
                        help='CPU threads for torch (torch.set_num_threads); on a shared machine 1 avoids '
                        'threads waiting on each other (default: torch\'s)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    args.command = ' '.join(['device_check.py'] + list(sys.argv[1:] if argv is None else argv))
    args.device = torch.device(args.device)
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    if args.device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False); '
                     'use --device cpu or run on a GPU machine')
    if args.preset is None:
        args.preset = ('quick' if args.quick else 'full') if args.device.type == 'cuda' else (
            'smoke' if args.quick else 'cpu')
    args.families = [f.strip() for f in args.families.split(',') if f.strip()]
    bad = [f for f in args.families if f not in ATTENTION_FAMILIES]
    if bad or not args.families:
        parser.error(f'--families: unknown {bad}; choose from {",".join(ATTENTION_FAMILIES)}')
    args.skip = {s.strip() for s in args.skip.split(',') if s.strip()}
    if args.skip - {'layers', 'nets', 'speed'}:
        parser.error(f'--skip: unknown sections {sorted(args.skip - {"layers", "nets", "speed"})}; '
                     'choose from layers, nets, speed')
    return args


def _device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)'


def run_check(args: argparse.Namespace) -> dict:
    """Run every section of the check, writing the report after each; returns the report."""
    device, preset = args.device, PRESETS[args.preset]
    start = time.monotonic()
    deadline = start + args.time_budget
    report = dict(meta=dict(device=str(device), device_name=_device_name(device), torch=torch.__version__,
                            python=sys.version.split()[0], preset=args.preset, sizes=preset,
                            started=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                            command=args.command, threads=torch.get_num_threads(),
                            time_budget_s=args.time_budget, finished=False, elapsed_s=0.0, sections_s={}),
                  tolerances=dict(atol=ATOL, error_factor=ERROR_FACTOR, net_grad_flips=FLIPS),
                  correctness=[], speed=[],
                  skipped_sections=[], errors=[])
    if device.type == 'cuda':
        report['meta'].update(cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                              matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                              cudnn_benchmark=torch.backends.cudnn.benchmark)
    last_cost: Dict[str, float] = {}

    def fits(kind: str, what: str) -> bool:
        """Whether a part like the last one of ``kind`` still ends before the deadline."""
        if time.monotonic() + last_cost.get(kind, 0.0) <= deadline:
            return True
        report['skipped_sections'].append(f'{what} (time budget {args.time_budget:g} s)')
        return False

    def timed(kind: str, fn, what: str) -> list:
        """``fn()``'s rows; an exception is recorded (the check goes on with the next part)."""
        t0 = time.monotonic()
        try:
            out = fn()
        except Exception as err:
            report['errors'].append(f'{what}: {type(err).__name__}: {err}'.splitlines()[0])
            out = []
            if device.type == 'cuda':
                torch.cuda.empty_cache()
        last_cost[kind] = time.monotonic() - t0
        report['meta']['sections_s'][kind] = report['meta']['sections_s'].get(kind, 0.0) + last_cost[kind]
        return out

    def save():
        report['meta']['elapsed_s'] = time.monotonic() - start
        _write(report, args.out_dir)

    support = dtype_support(device)
    report['meta']['dtype_support'] = {k: v or 'ok' for k, v in support.items()}
    layer_names = [n for n in LAYERS if n in args.families or (n == 'psa' and 'epsanet' in args.families)]
    if 'layers' not in args.skip:
        for name in layer_names:
            if fits('layer', f'layer {name}'):
                report['correctness'] += timed('layer', lambda: check_subject(
                    layer_subject(name, preset['layer'], args.seed, device), device, support),
                    f'layer {name}')
                print(f'[device_check] layer {name} checked', file=sys.stderr)
        save()
    if 'nets' not in args.skip:
        for family in args.families:
            if fits('net', f'network {family}'):
                report['correctness'] += timed('net', lambda: check_subject(
                    net_subject(family, preset, args.seed, device), device, support), f'network {family}')
                print(f'[device_check] network {family} checked', file=sys.stderr)
                save()
    if 'speed' not in args.skip:
        # AMP as users run it: float16 with the loss scaler on CUDA (mmdet's --amp), bfloat16 on CPU
        amp = 'float16' if device.type == 'cuda' else 'bfloat16'
        precisions = ['float32'] + ([amp] if support.get(amp) is None else [])
        torch.manual_seed(args.seed)
        models = {f: preset_network(preset, f).to(device) for f in ['resnet'] + args.families}
        for size in preset['speed']:
            for precision in precisions:
                for mode in ('infer', 'train'):
                    what = f'speed {size} {precision} {mode}'
                    if fits('speed', what):
                        report['speed'] += timed('speed', lambda: speed_group(
                            models, device, size, precision, mode, preset['rounds'], preset['iters'],
                            preset['warmup'], deadline), what)
                        print(f'[device_check] {what} measured', file=sys.stderr)
                        save()
        if args.compile and fits('compile', 'compile'):
            report['speed'] += timed('compile', lambda: compile_group(
                models, device, preset['speed'][0], precisions[-1], preset['rounds'], preset['iters'],
                preset['warmup'], deadline), 'compile')
        del models
    report['meta']['finished'] = not report['skipped_sections'] and not report['errors']
    report['verdict'] = verdict(report, device.type)
    save()
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        report = run_check(args)
    finally:
        torch.set_num_threads(threads)
    print(markdown(report))
    failed = [r for r in report['correctness'] if r['status'] == 'fail']
    return 1 if failed else 0
