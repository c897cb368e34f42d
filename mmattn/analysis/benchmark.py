"""Speed and memory of attention backbones / detectors, as ratios to the plain ResNet of the same depth.

Measures, for every model:

* **inference** images/s: ``model(x)`` under ``torch.inference_mode`` in eval mode. A bare backbone
  returns its four stage outputs; a detector runs its network on the image (backbone, neck, heads; a
  two-stage detector's RoI head gets ``proposals`` fixed boxes, no NMS / post-processing, exactly
  the computation ``get_flops.py`` counts);
* **training** iterations/s: forward + backward + SGD step in train mode. A backbone's loss is the sum of
  the means of its outputs; a detector computes its real losses (``mode='loss'``) on a synthetic batch
  with 5 ground-truth boxes (and masks) per image, the same batch for every model;
* **peak memory** of one step: CUDA: ``torch.cuda.max_memory_allocated()`` over a measured iteration
  (weights + activations, + gradients and optimizer state when training). CPU: the increase of the
  peak resident set size (``VmHWM``) of a fresh child process over one step (warm-up step
  included), relative to its RSS after importing torch/mmdet and before building the model, so it
  also covers weights (and allocator overhead). The child runs with glibc's mmap threshold fixed
  (``MALLOC_MMAP_THRESHOLD_=131072``) so that freed feature maps leave the RSS; otherwise the peak
  measures heap fragmentation. The CPU figure is process memory, not tensor bytes: compare CPU numbers
  only with CPU numbers.
* **channels-last** (``compare_channels_last``): every model also runs with its weights and input in
  channels-last (NHWC), in the same rounds; its ratio vs ResNet is to the channels-last ResNet, and
  the last column is its speed relative to the same model in NCHW (> 1: channels-last is faster);
Timing protocol: every model is built and warmed up first (``warmup`` iterations each); then
``repeats`` rounds each time ``iters`` iterations of every model, the models interleaved and their
order rotated every round so that drift (thermal, other processes) hits all of them alike. The table
reports the median over rounds and the ratio to the ResNet of the same depth and memory format
measured in the same run (added automatically when missing). The speed ratio is the median over
rounds of the ratio within each round (baseline time / model time, measured minutes apart at most),
with the lowest and highest round in brackets: on a shared or throttling machine the pairing cancels
the drift between rounds that a ratio of two medians would keep. Ratios > 1 mean faster (throughput)
or bigger (memory).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .build import (DetectorWrapper, backbone_type_depth, build_backbone, build_detector, num_classes,
                    read_config)
from .names import expand_backbone_specs
from .timing import paired_ratio

CHANNELS_LAST_SUFFIX = ' (NHWC)'  # name of a model's channels-last twin in a compare_channels_last run


def parse_size(text: str) -> Tuple[int, int]:
    """'224' -> (224, 224); '800x1333' -> (800, 1333) (H x W)."""
    parts = text.lower().replace('*', 'x').split('x')
    if len(parts) == 1:
        return int(parts[0]), int(parts[0])
    if len(parts) == 2:
        return int(parts[0]), int(parts[1])
    raise argparse.ArgumentTypeError(f'size {text!r} must be N or HxW')


# ----------------------------------------------------------------------------- models
class Subject:
    """One model to benchmark: builds the model, its inputs, and runs one inference / training step."""

    def __init__(self, kind: str, spec: str, args, channels_last: Optional[bool] = None):
        self.kind, self.spec, self.args = kind, spec, args
        self.channels_last = args.channels_last if channels_last is None else channels_last
        self.device = torch.device(args.device)
        self.model = None
        self.optimizer = None
        self.name = spec if kind == 'backbone' else osp.splitext(osp.basename(spec))[0]
        if args.compare_channels_last and self.channels_last:
            self.name += CHANNELS_LAST_SUFFIX
        self.backbone_type, self.depth = None, None

    # -- building
    def build(self):
        torch.manual_seed(0)
        if self.kind == 'backbone':
            model, self.backbone_type, self.depth = build_backbone(self.spec)
        else:
            cfg = read_config(self.spec)
            self.backbone_type, self.depth = backbone_type_depth(cfg.model)
            model = build_detector(cfg)
            h, w = self.args.size
            self.wrapper = DetectorWrapper(model, h, w, self.args.proposals)
        self.model = model.to(self.device)
        if self.kind == 'detector':
            self.wrapper = self.wrapper.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        gen = torch.Generator().manual_seed(0)
        b, (h, w) = self.args.batch, self.args.size
        self.image = torch.randn(b, 3, h, w, generator=gen).to(self.device)
        if self.channels_last:
            self.image = self.image.contiguous(memory_format=torch.channels_last)
        self.train_data = None
        if self.kind == 'detector' and 'train' in self.modes:
            self.train_data = self._detector_batch(cfg)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9)
        self.scaler = torch.amp.GradScaler('cuda') if self.args.amp and self.device.type == 'cuda' else None
        return self

    @property
    def modes(self) -> Tuple[str, ...]:
        return ('infer', 'train') if self.args.mode == 'both' else (self.args.mode, )

    def _detector_batch(self, cfg):
        """A packed, preprocessed training batch: same images (values in 0..255) and 5 boxes per image."""
        from mmdet.testing import demo_mm_inputs
        b, (h, w) = self.args.batch, self.args.size
        with_mask = 'mask' in str(cfg.model.get('roi_head', {}).get('mask_head', {}).get('type', '')).lower()
        packed = demo_mm_inputs(batch_size=b, image_shapes=[(3, h, w)] * b, num_items=[5] * b,
                                num_classes=num_classes(cfg.model) or 80, with_mask=with_mask)
        data = self.model.data_preprocessor(packed, True)
        inputs = data['inputs'].to(self.device)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, [s.to(self.device) for s in data['data_samples']]

    # -- steps
    def _autocast(self):
        if not self.args.amp:
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.float16 if self.device.type == 'cuda' else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def infer_step(self):
        self.model.eval()
        runner = self.model if self.kind == 'backbone' else self.wrapper
        with torch.inference_mode(), self._autocast():
            return runner(self.image)

    def train_step(self):
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            if self.kind == 'backbone':
                outs = self.model(self.image)
                loss = sum(o.float().mean() for o in outs)
            else:
                inputs, samples = self.train_data
                losses = self.model(inputs, samples, mode='loss')
                loss, _ = self.model.parse_losses(losses)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss.detach()

    def step(self, mode: str):
        return self.infer_step() if mode == 'infer' else self.train_step()

    def sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)


# ----------------------------------------------------------------------------- measuring
def time_step(subject: Subject, mode: str, iters: int) -> float:
    """Seconds per iteration over ``iters`` iterations."""
    subject.sync()
    start = time.perf_counter()
    for _ in range(iters):
        out = subject.step(mode)
    subject.sync()
    del out
    return (time.perf_counter() - start) / iters


def cuda_peak_memory(subject: Subject, mode: str) -> float:
    """Peak bytes allocated by torch over one iteration (weights, activations, grads, optimizer state)."""
    torch.cuda.synchronize(subject.device)
    torch.cuda.reset_peak_memory_stats(subject.device)
    out = subject.step(mode)
    torch.cuda.synchronize(subject.device)
    del out
    return float(torch.cuda.max_memory_allocated(subject.device))


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _peak_rss_bytes() -> int:
    """Peak RSS of this process image (VmHWM). Not ``ru_maxrss``: that survives ``exec`` and would
    report the forking parent's RSS."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError('no VmHWM in /proc/self/status')


def _memory_child(payload: dict) -> dict:
    """Runs in a fresh interpreter (``python -m mmattn.analysis.benchmark JSON``): RSS growth of build and
    one step."""
    args = argparse.Namespace(**payload['args'])
    args.size = tuple(args.size)
    if args.threads:
        torch.set_num_threads(args.threads)
    import mmattn.models  # noqa: F401  (imports counted in the baseline, not in the model's memory)
    import mmdet.models  # noqa: F401
    import mmdet.structures  # noqa: F401
    base = _rss_bytes()
    subject = Subject(payload['kind'], payload['spec'], args).build()
    out = subject.step(payload['mode'])
    del out
    return dict(peak_bytes=_peak_rss_bytes() - base)


def _memory_child_env() -> dict:
    """glibc raises its mmap threshold up to 32 MB as large blocks are freed, after which freed feature
    maps stay in the heap and RSS keeps the high-water mark of fragmentation, not of live tensors, and
    the ratios between models drift with each model's allocation order. A fixed threshold makes every
    feature map its own mapping, returned to the OS when freed."""
    return dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072')


def cpu_peak_memory(kind: str, spec: str, args, mode: str, channels_last: bool = False) -> Optional[float]:
    """Peak RSS growth of a fresh process over building the model and one step (see module doc)."""
    if not osp.exists('/proc/self/statm'):
        return None
    payload = dict(kind=kind, spec=spec, mode=mode, args=dict(vars(args), channels_last=channels_last))
    try:
        proc = subprocess.run([sys.executable, '-m', 'mmattn.analysis.benchmark', json.dumps(payload)],
                              capture_output=True, text=True, timeout=3600, env=_memory_child_env())
    except subprocess.TimeoutExpired:
        print(f'memory of {spec} ({mode}) timed out', file=sys.stderr)
        return None
    result = None
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith('{'):
            result = json.loads(line)
            break
    if proc.returncode != 0 or result is None:
        print(f'memory of {spec} ({mode}) failed:\n{proc.stderr[-2000:]}', file=sys.stderr)
        return None
    return float(result['peak_bytes'])


def run(args) -> List[dict]:
    """Benchmark every subject; returns one record per (model, mode)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda but CUDA is not available')
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True
    specs = expand_backbone_specs(args.backbones or [], (args.depth, ))
    layouts = (False, True) if args.compare_channels_last else (args.channels_last, )
    subjects = [Subject(kind, spec, args, channels_last=cl) for kind, spec in
                [('backbone', s) for s in specs] + [('detector', c) for c in args.configs] for cl in layouts]
    if not subjects:
        raise SystemExit('nothing to benchmark: give --backbones and/or --configs')
    for s in subjects:
        t0 = time.time()
        s.build()
        print(f'built {s.name} ({time.time() - t0:.1f}s)', file=sys.stderr)
    add_missing_baselines(subjects, args)
    modes = subjects[0].modes
    times: Dict[Tuple[str, str], List[float]] = {(s.name, m): [] for s in subjects for m in modes}
    for mode in modes:
        for s in subjects:  # warm-up (allocator, cudnn autotuning, lazy init)
            for _ in range(args.warmup):
                s.step(mode)
            s.sync()
        for r in range(args.repeats):
            order = subjects[r % len(subjects):] + subjects[:r % len(subjects)]
            for s in order:
                times[(s.name, mode)].append(time_step(s, mode, args.iters))
            print(f'{mode} round {r + 1}/{args.repeats}: ' + ', '.join(
                f'{s.name} {times[(s.name, mode)][-1] * 1e3:.0f} ms' for s in subjects), file=sys.stderr)
    records = []
    for mode in modes:
        for s in subjects:
            med = statistics.median(times[(s.name, mode)])
            rec = dict(name=s.name, kind=s.kind, backbone=s.backbone_type, depth=s.depth, mode=mode,
                       channels_last=s.channels_last,
                       seconds_per_iter=med, all_seconds=times[(s.name, mode)],
                       throughput=(args.batch / med) if mode == 'infer' else 1.0 / med,
                       unit='img/s' if mode == 'infer' else 'it/s', memory=None)
            records.append(rec)
    if not args.no_memory:
        for rec, s in ((r, s) for r in records for s in subjects if s.name == r['name']):
            if s.device.type == 'cuda':
                rec['memory'] = cuda_peak_memory(s, rec['mode'])
            else:
                rec['memory'] = cpu_peak_memory(s.kind, s.spec, args, rec['mode'], s.channels_last)
    return records


def add_missing_baselines(subjects: List[Subject], args) -> None:
    """Make sure a plain ResNet of every depth (and memory format) present is measured in the same run;
    added baselines go first, in the order of the models that need them."""
    added = 0
    for s in list(subjects):
        if s.kind != 'backbone' or s.backbone_type == 'ResNet':
            continue
        if not any(o.kind == 'backbone' and o.backbone_type == 'ResNet' and o.depth == s.depth
                   and o.channels_last == s.channels_last for o in subjects):
            base = Subject('backbone', f'ResNet-{s.depth}', args, channels_last=s.channels_last).build()
            subjects.insert(added, base)
            added += 1
            print(f'added baseline {base.name}', file=sys.stderr)


def baseline_of(records: Sequence[dict], rec: dict) -> Optional[dict]:
    """The plain-ResNet record of the same kind, depth, mode and memory format (for detectors: same
    config but ResNet, matched by the config name with the backbone part replaced is not reliable, so
    by depth and detector name pattern)."""
    for other in records:
        if other['mode'] != rec['mode'] or other['depth'] != rec['depth'] or other['backbone'] != 'ResNet' \
                or other.get('channels_last') != rec.get('channels_last'):
            continue
        if rec['kind'] == 'backbone' and other['kind'] == 'backbone':
            return other
        if rec['kind'] == 'detector' and other['kind'] == 'detector' and \
                other['name'].split('_')[0] == rec['name'].split('_')[0]:
            return other
    return None


def contiguous_twin(records: Sequence[dict], rec: dict) -> Optional[dict]:
    """For a channels-last record of a ``--compare-channels-last`` run: the same model and mode in NCHW."""
    if not rec.get('channels_last') or not rec['name'].endswith(CHANNELS_LAST_SUFFIX):
        return None
    name = rec['name'][:-len(CHANNELS_LAST_SUFFIX)]
    return next((o for o in records if o['name'] == name and o['mode'] == rec['mode']
                 and not o.get('channels_last')), None)


def paired_ratio_text(base: dict, rec: dict) -> str:
    """'median (lowest–highest)' of the per-round speed ratios ``base time / rec time`` (each round
    times every model once)."""
    median, low, high = paired_ratio(base['all_seconds'], rec['all_seconds'])
    return f'{median:.3f} ({low:.2f}–{high:.2f})'


def malloc_settings() -> str:
    """The glibc ``MALLOC_*`` environment of this run, for the table's header."""
    settings = sorted(f'{k}={v}' for k, v in os.environ.items() if k.startswith('MALLOC_'))
    return ', '.join(settings) if settings else 'glibc malloc defaults'


def ratio_table(records: Sequence[dict], args) -> str:
    cpu = args.device == 'cpu'
    mem_label = 'peak mem (MB, RSS growth)' if cpu else 'peak mem (MB, CUDA allocated)'
    twin_label = ' NHWC vs NCHW |' if args.compare_channels_last else ''
    lines = [f'device {args.device}, batch {args.batch}, input {args.size[0]}x{args.size[1]}, '
             f'{"channels-last, " if args.channels_last else ""}'
             f'{"each model in NCHW and channels-last (NHWC), " if args.compare_channels_last else ""}'
             f'{"AMP, " if args.amp else ""}'
             f'threads {torch.get_num_threads()}, torch {torch.__version__}'
             f'{"; " + malloc_settings() if cpu else ""}; median of {args.repeats} rounds x '
             f'{args.iters} iters (after {args.warmup} warm-up); speed ratio: median of the per-round ratios '
             f'(lowest–highest round)', '',
             f'| model | mode | throughput | ms/iter (min–max) | ratio vs ResNet | {mem_label} | mem ratio |'
             + twin_label,
             '|---|---|---|---|---|---|---|' + ('---|' if twin_label else '')]
    for rec in records:
        base = baseline_of(records, rec)
        ratio = '–' if base is None else paired_ratio_text(base, rec)
        twin = contiguous_twin(records, rec)
        twin_cell = (' – |' if twin is None else f' {paired_ratio_text(twin, rec)} |') if twin_label else ''
        mem = '–' if rec['memory'] is None else f'{rec["memory"] / 2**20:.0f}'
        mem_ratio = f'{rec["memory"] / base["memory"]:.3f}' if base and rec['memory'] and base['memory'] else '–'
        spread = f'{min(rec["all_seconds"]) * 1e3:.0f}–{max(rec["all_seconds"]) * 1e3:.0f}'
        lines.append(f'| {rec["name"]} | {rec["mode"]} | {rec["throughput"]:.3g} {rec["unit"]} | '
                     f'{rec["seconds_per_iter"] * 1e3:.0f} ({spread}) | {ratio} | {mem} | {mem_ratio} |'
                     + twin_cell)
    return '\n'.join(lines)


if __name__ == '__main__':  # the memory child of cpu_peak_memory
    print(json.dumps(_memory_child(json.loads(sys.argv[1]))))
