"""Quick start: train and evaluate attention-backbone detectors and segmentors on CPU.

Steps:

1. print every mmattn backbone (depth, parameters, output shapes);
2. generate the synthetic toy COCO dataset and, from the same scenes, the toy
   segmentation dataset (each skipped if it is up to date);
3. train Mask R-CNN with an SE-ResNet and with an SA-ResNet (Shuffle
   Attention) backbone, then the same two backbones in a Semantic FPN
   segmentor (MMSegmentation, the ``seg`` extra), with ``tools/train.py`` -
   the command users run;
4. evaluate every checkpoint with ``tools/test.py`` (COCO bbox + segm; mIoU);
5. print a side-by-side table per task.

Finished work is reused: a model whose final checkpoint exists is not
trained again and a checkpoint that was already evaluated is not tested
again, unless ``--force`` is given. Example::

    python tools/quick_start.py
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
import warnings
from typing import List, Optional

# mmengine 0.10.x imports pkg_resources, which setuptools >= 81 deprecates.
warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

from mmattn.analysis.metafile import seed_spread  # noqa: E402
from mmattn.analysis.summary import format_table, summarize_backbones  # noqa: E402
from mmattn.datasets.toy_coco import generate_toy_coco  # noqa: E402
from mmattn.datasets.toy_seg import generate_toy_seg  # noqa: E402
from mmattn.utils.config_check import SEG_EXTRA_HINT  # noqa: E402

TOOLS_DIR = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(TOOLS_DIR)
CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'quickstart')
DEFAULT_CONFIGS = (
    osp.join(CONFIG_DIR, 'mask-rcnn_se-r50_fpn_toy-coco.py'),
    osp.join(CONFIG_DIR, 'mask-rcnn_sa-r50_fpn_toy-coco.py'),
)
DEFAULT_SEG_CONFIGS = (
    osp.join(CONFIG_DIR, 'fpn_se-r50_toy-seg.py'),
    osp.join(CONFIG_DIR, 'fpn_sa-r50_toy-seg.py'),
)
# The data the quick-start configs are tuned for (both datasets: same scenes).
TOY_DATA = dict(num_train=600, num_val=100, size=128, seed=0)
RESULT_FILE = 'quick_start_result.json'
METRIC_KEYS = dict(
    box_ap='coco/bbox_mAP', box_ap50='coco/bbox_mAP_50',
    mask_ap='coco/segm_mAP')
# mmseg's IoUMetric logs percentages under these names.
SEG_METRIC_KEYS = dict(miou='mIoU', macc='mAcc', aacc='aAcc')


def parse_args():
    parser = argparse.ArgumentParser(
        description='Train and evaluate SE and SA attention backbones in Mask '
        'R-CNN and in Semantic FPN (MMSegmentation) on synthetic datasets '
        '(CPU, a few minutes)')
    parser.add_argument(
        '--configs',
        nargs='*',
        default=list(DEFAULT_CONFIGS),
        help='detection configs to train and evaluate (none: only the '
        'segmentation run)')
    parser.add_argument(
        '--seg-configs',
        nargs='*',
        default=list(DEFAULT_SEG_CONFIGS),
        help='segmentation configs to train and evaluate (none: skip the '
        'segmentation run, which needs MMSegmentation, the seg extra)')
    parser.add_argument(
        '--data-root',
        default='data/toy_coco',
        help='where the toy dataset is (or will be) generated')
    parser.add_argument(
        '--seg-data-root',
        default='data/toy_seg',
        help='where the toy segmentation dataset is (or will be) generated')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/quickstart',
        help='root of the work dirs, one sub-directory per config')
    parser.add_argument(
        '--force',
        action='store_true',
        help='train and evaluate again even if results exist')
    parser.add_argument(
        '--skip-summary',
        action='store_true',
        help='do not print the backbone summary')
    parser.add_argument(
        '--jobs',
        type=int,
        help='number of trainings run side by side (default: one per '
        'config, at most one per CPU core)')
    parser.add_argument(
        '--seed',
        type=int,
        help='training seed (default: the configs\' randomness.seed)')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='print the full logs of train.py and test.py')
    return parser.parse_args()


def _fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return '-'
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f'{minutes}m{seconds:02d}s'


class _Job:
    """A tool run in a subprocess whose output goes to a log file."""

    def __init__(self, tag: str, cmd: List[str], log_file: str):
        self.tag = tag
        self.cmd = cmd
        self.log_file = log_file
        self.proc = None
        self.start = None
        self.wall = None
        self._log = None
        self._offset = 0

    def launch(self, env: dict) -> None:
        print(f'  [{self.tag}] $ ' + ' '.join(self.cmd), flush=True)
        self._log = open(self.log_file, 'w')
        self.start = time.time()
        self.proc = subprocess.Popen(
            self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def new_lines(self) -> List[str]:
        """Complete lines the job wrote since the last call."""
        with open(self.log_file) as f:
            f.seek(self._offset)
            text = f.read()
        end = text.rfind('\n') + 1
        self._offset += len(text[:end].encode())
        return text[:end].splitlines()

    def poll(self) -> Optional[int]:
        code = self.proc.poll()
        if code is not None and self.wall is None:
            self.wall = time.time() - self.start
            self._log.close()
        return code


_PROGRESS = re.compile(r'(Epoch|Iter)\((train|test)\)\s*(\[[^a-z]*\])')
_VALUES = re.compile(r'\b(eta|loss|coco/bbox_mAP|coco/segm_mAP): (\S+)')


def _summarize_line(line: str) -> Optional[str]:
    """A short progress line for a training or test log line, or None."""
    match = _PROGRESS.search(line)
    if match is None:
        if 'Error' in line or 'error:' in line:
            return line.rstrip()
        return None
    values = '  '.join(f'{k}: {v}' for k, v in _VALUES.findall(line))
    return f'{match.group(0)}  {values}'


def run_jobs(jobs: List[_Job], num_parallel: int, verbose: bool) -> None:
    """Run ``jobs``, ``num_parallel`` at a time, and show their progress.

    Each job gets ``cpu_count // num_parallel`` intra-op threads: on a small
    CPU machine, single-threaded processes side by side are faster than one
    multi-threaded process at a time. OpenMP threads also sleep instead of
    spinning while they wait (``OMP_WAIT_POLICY=PASSIVE``): when the cores
    are shared with other work, spinning threads that wait for a descheduled
    peer make a step tens of times slower.
    """
    threads = str(max(1, (os.cpu_count() or 1) // num_parallel))
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        env.setdefault(var, threads)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < num_parallel:
            job = pending.pop(0)
            job.launch(env)
            running.append(job)
        time.sleep(1)
        for job in list(running):
            code = job.poll()
            for line in job.new_lines():
                short = line.rstrip() if verbose else _summarize_line(line)
                if short:
                    print(f'  [{job.tag}] {short}', flush=True)
            if code is None:
                continue
            running.remove(job)
            if code != 0:
                for other in running:
                    other.proc.terminate()
                sys.exit(f'quick_start.py: [{job.tag}] failed with exit code '
                         f'{code}; see {job.log_file}')


def _final_checkpoint(cfg, work_dir: str) -> str:
    train_cfg = cfg.train_cfg
    if 'max_iters' in train_cfg:
        return osp.join(work_dir, f'iter_{train_cfg.max_iters}.pth')
    return osp.join(work_dir, f'epoch_{train_cfg.max_epochs}.pth')


def _test_metrics(test_dir: str, key: str = METRIC_KEYS['box_ap']) -> dict:
    """The metrics (a record holding ``key``) of the newest ``tools/test.py``
    run under ``test_dir``."""
    # mmengine writes the test metrics to <work_dir>/<timestamp>/<ts>.json.
    files = sorted(glob.glob(osp.join(test_dir, '*', '*.json')))
    for path in reversed(files):
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        for record in reversed(lines):
            if key in record:
                return record
    raise RuntimeError(f'No {key} metric found under {test_dir}')


def _model_params(cfg) -> dict:
    """Parameters of the detector or segmentor and of its backbone."""
    from mmengine.registry import init_default_scope
    scope = cfg.get('default_scope', 'mmdet')
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    init_default_scope(scope)
    model = MODELS.build(cfg.model)
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        backbone_params=sum(p.numel() for p in model.backbone.parameters()))


class Experiment:
    """One config: its work dir, final checkpoint and cached result."""

    def __init__(self, config: str, data_root: str, work_root: str,
                 force: bool, seed: Optional[int] = None):
        from mmengine.config import Config
        self.config = config
        self.name = osp.splitext(osp.basename(config))[0]
        self.cfg = Config.fromfile(config)
        self.is_seg = self.cfg.get('default_scope') == 'mmseg'
        self.seed = seed
        self.tag = self.cfg.model.backbone.type
        # Runs with another seed get their own work dir, so that finished
        # work of one seed is never reused for another.
        suffix = '' if seed is None else f'_seed{seed}'
        self.work_dir = osp.join(work_root, self.name + suffix)
        os.makedirs(self.work_dir, exist_ok=True)
        self.checkpoint = _final_checkpoint(self.cfg, self.work_dir)
        self.data_root = data_root.rstrip('/') + '/'
        self.result_file = osp.join(self.work_dir, RESULT_FILE)
        self.result = {}
        if osp.isfile(self.result_file) and not force:
            with open(self.result_file) as f:
                self.result = json.load(f)
        self.needs_training = force or not osp.isfile(self.checkpoint)
        if self.needs_training:
            self.result = {}

    def train_job(self) -> _Job:
        cmd = [
            sys.executable,
            osp.join(TOOLS_DIR, 'train.py'), self.config, '--work-dir',
            self.work_dir, '--cfg-options',
            f'train_dataloader.dataset.data_root={self.data_root}',
            # Evaluation is done once, by tools/test.py afterwards.
            'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'
        ]
        if self.seed is not None:
            cmd.append(f'randomness.seed={self.seed}')
        return _Job(self.tag, cmd,
                    osp.join(self.work_dir, 'quick_start_train.log'))

    def needs_testing(self) -> bool:
        return not ('metrics' in self.result and self.result.get(
            'checkpoint_mtime') == osp.getmtime(self.checkpoint))

    def test_job(self) -> _Job:
        cmd = [
            sys.executable,
            osp.join(TOOLS_DIR, 'test.py'), self.config, self.checkpoint,
            '--work-dir', self.test_dir, '--cfg-options',
            f'test_dataloader.dataset.data_root={self.data_root}'
        ]
        if not self.is_seg:
            cmd.append('test_evaluator.ann_file='
                       f'{self.data_root}annotations/instances_val.json')
        return _Job(self.tag, cmd,
                    osp.join(self.work_dir, 'quick_start_test.log'))

    @property
    def test_dir(self) -> str:
        return osp.join(self.work_dir, 'test')

    def save(self) -> dict:
        self.result.update(
            name=self.name,
            config=self.config,
            checkpoint=self.checkpoint,
            backbone=self.tag)
        self.result.update(_model_params(self.cfg))
        with open(self.result_file, 'w') as f:
            json.dump(self.result, f, indent=2)
        return self.result


def run_experiments(experiments: List[Experiment], num_parallel: int,
                    verbose: bool) -> List[dict]:
    """Train what is not trained, test what is not tested, in parallel."""
    to_train = [exp for exp in experiments if exp.needs_training]
    for exp in experiments:
        if not exp.needs_training:
            print(f'  [{exp.tag}] final checkpoint {exp.checkpoint} exists; '
                  'skip training (--force to retrain)')
    if to_train:
        print(f'\n== training {len(to_train)} model(s), {num_parallel} at a '
              'time', flush=True)
        jobs = [exp.train_job() for exp in to_train]
        run_jobs(jobs, num_parallel, verbose)
        for exp, job in zip(to_train, jobs):
            if not osp.isfile(exp.checkpoint):
                sys.exit(f'quick_start.py: training finished but '
                         f'{exp.checkpoint} was not written; see '
                         f'{job.log_file}')
            exp.result['train_time'] = job.wall

    to_test = [exp for exp in experiments if exp.needs_testing()]
    for exp in experiments:
        if exp not in to_test:
            print(f'  [{exp.tag}] {exp.checkpoint} already evaluated; reuse '
                  'its metrics')
    if to_test:
        print(f'\n== testing {len(to_test)} model(s) with tools/test.py',
              flush=True)
        jobs = [exp.test_job() for exp in to_test]
        run_jobs(jobs, num_parallel, verbose)
        for exp, job in zip(to_test, jobs):
            keys = SEG_METRIC_KEYS if exp.is_seg else METRIC_KEYS
            metrics = _test_metrics(exp.test_dir, next(iter(keys.values())))
            exp.result['metrics'] = {
                key: metrics.get(log_key) for key, log_key in keys.items()
            }
            exp.result['test_time'] = job.wall
            exp.result['checkpoint_mtime'] = osp.getmtime(exp.checkpoint)
    return [exp.save() for exp in experiments]


def _spread_cell(spread: Optional[dict], key: str) -> str:
    if not spread or key not in spread:
        return '-'
    return f'{min(spread[key]):.3f}-{max(spread[key]):.3f}'


def _text_table(header, rows) -> str:
    """Left-aligned columns as wide as their widest cell, a dashed rule under the header."""
    widths = [max(len(h), *(len(r[i]) for r in rows))
              for i, h in enumerate(header)]
    fmt = '  '.join(f'{{:<{w}}}' for w in widths)
    lines = [fmt.format(*header), fmt.format(*('-' * w for w in widths))]
    lines.extend(fmt.format(*row) for row in rows)
    return '\n'.join(lines)


def format_results(results: List[dict]) -> str:
    """Side-by-side table of the results of :func:`run_experiments`, with
    the range of the box and mask AP over the seeds measured once (from the
    metafile; '-' where none were)."""
    header = ('model', 'backbone', 'params (M)', 'backbone params (M)',
              'box AP', 'AP50', 'mask AP', 'train time', 'box AP, seeds',
              'mask AP, seeds')
    rows = []
    for res in results:
        metrics = res.get('metrics', {})
        aps = [metrics.get(key) for key in ('box_ap', 'box_ap50', 'mask_ap')]
        spread = seed_spread(res['name'])
        rows.append((res['name'], res['backbone'],
                     f'{res["params"] / 1e6:.2f}',
                     f'{res["backbone_params"] / 1e6:.2f}',
                     *('-' if ap is None else f'{ap:.3f}' for ap in aps),
                     _fmt_time(res.get('train_time')),
                     _spread_cell(spread, 'box AP'),
                     _spread_cell(spread, 'mask AP')))
    return _text_table(header, rows)


def format_seg_results(results: List[dict]) -> str:
    """Side-by-side table of segmentation results (mmseg's percentages)."""
    header = ('model', 'backbone', 'params (M)', 'backbone params (M)',
              'mIoU', 'mAcc', 'aAcc', 'train time')
    rows = []
    for res in results:
        metrics = res.get('metrics', {})
        values = [metrics.get(key) for key in ('miou', 'macc', 'aacc')]
        rows.append((res['name'], res['backbone'],
                     f'{res["params"] / 1e6:.2f}',
                     f'{res["backbone_params"] / 1e6:.2f}',
                     *('-' if v is None else f'{v:.2f}' for v in values),
                     _fmt_time(res.get('train_time'))))
    return _text_table(header, rows)


def spread_note(results: List[dict]) -> str:
    """Where the 'seeds' columns come from, and what they mean for a ranking."""
    spreads = [seed_spread(res['name']) for res in results]
    known = [sp for sp in spreads if sp]
    if not known:
        return ('\nNo seed spread is recorded for these configs: a difference '
                'between two rows may be noise.')
    sp = known[0]
    return (f'\nThe "seeds" columns: lowest-highest AP over seeds '
            f'{", ".join(map(str, sp["Seeds"]))} ({sp["Date"]}, '
            f'`{sp["Command"]}`; configs/quickstart/README.md). These short '
            'from-scratch runs are noise-dominated: differences within those '
            'ranges are noise and do not rank the attention modules.')


def main():
    args = parse_args()
    start = time.time()
    data_root = osp.abspath(args.data_root)
    seg_data_root = osp.abspath(args.seg_data_root)
    work_root = osp.abspath(args.work_dir)

    if not args.skip_summary:
        print('== mmattn backbones', flush=True)
        print(format_table(summarize_backbones(input_size=64), 64), flush=True)

    if args.configs:
        print(f'\n== toy COCO data in {data_root}', flush=True)
        generate_toy_coco(data_root, **TOY_DATA, verbose=True)
    if args.seg_configs:
        try:
            import mmseg  # noqa: F401
        except ModuleNotFoundError as e:
            if e.name != 'mmseg':
                raise
            sys.exit('quick_start.py: the segmentation run needs MMSegmentation. '
                     f'{SEG_EXTRA_HINT} Or skip it with --seg-configs (no '
                     'value).')
        print(f'\n== toy segmentation data in {seg_data_root}', flush=True)
        generate_toy_seg(seg_data_root, **TOY_DATA, verbose=True)

    experiments = [
        Experiment(osp.abspath(config), data_root, work_root, args.force,
                   args.seed) for config in args.configs
    ] + [
        Experiment(osp.abspath(config), seg_data_root, work_root, args.force,
                   args.seed) for config in args.seg_configs
    ]
    num_parallel = args.jobs or min(
        max(len(args.configs), len(args.seg_configs)), os.cpu_count() or 1)
    results = run_experiments(experiments, num_parallel, args.verbose)
    det = [res for res, exp in zip(results, experiments) if not exp.is_seg]
    seg = [res for res, exp in zip(results, experiments) if exp.is_seg]
    if det:
        print('\n== results on the toy COCO val split (COCO AP@[.5:.95])')
        print(format_results(det))
        print(spread_note(det))
    if seg:
        print('\n== results on the toy segmentation val split (mIoU, mAcc, '
              'aAcc in %; 4 classes with the background)')
        print(format_seg_results(seg))
    print(f'\nTotal wall time: {_fmt_time(time.time() - start)} '
          f'(work dirs under {work_root})')


if __name__ == '__main__':
    main()
