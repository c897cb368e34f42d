"""Test (and evaluate) a detector (MMDetection 3.x) or segmentor (MMSegmentation 1.x) checkpoint.

The arguments and behaviour follow ``tools/test.py`` of MMDetection 3.3.0;
for a segmentation config (``default_scope='mmseg'``, the ``seg`` extra)
``--show``/``--show-dir`` and ``--tta`` work as in MMSegmentation's, and
``--out`` dumps the segmentation results.
Like ``tools/train.py`` it imports ``mmattn.models``, loads the checkpoint
with ``torch.load(weights_only=True)`` (a checkpoint cannot run code), checks
the config and checkpoint path before building the runner and runs
distributed tests on CPU with gloo. A checkpoint that leaves model tensors
missing or with another shape (another config's, or an empty ``state_dict``)
is refused instead of evaluating a partly random model, unless
``--allow-partial-checkpoint`` is given.

Example::

    python tools/test.py configs/quickstart/mask-rcnn_se-r50_fpn_toy-coco.py \
        work_dirs/mask-rcnn_se-r50_fpn_toy-coco/epoch_6.pth
    python tools/test.py configs/quickstart/fpn_sa-r50_toy-seg.py \
        work_dirs/fpn_sa-r50_toy-seg/iter_900.pth
"""
import argparse
import os
import os.path as osp
import sys
import warnings
from copy import deepcopy

# mmengine 0.10.x imports pkg_resources, which setuptools >= 81 deprecates
# with a warning on every start; it is noise for users of this tool.
warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402

import mmattn.models  # noqa: E402,F401  registers the mmattn backbones
from mmattn.utils import (CheckpointLoadError, ConfigCheckError, build_runner,  # noqa
                          close_distributed, check_checkpoint_path, check_config,
                          load_config, safe_checkpoint_loading)
from mmattn.utils.pretrained import (PartialCheckpointError, check_coverage,  # noqa: E402
                                     extract_state_dict, load_any_checkpoint,
                                     model_state_for_checkpoint)
from mmdet.engine.hooks.utils import trigger_visualization_hook  # noqa: E402
from mmdet.evaluation import DumpDetResults  # noqa: E402
from mmengine.evaluator import DumpResults  # noqa: E402
from mmdet.utils import setup_cache_size_limit_of_dynamo  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--tta', action='store_true')
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='evaluate even if the checkpoint leaves model tensors missing or '
        'with another shape (they keep their random initialisation)')
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/test.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def default_tta_pipeline(test_pipeline: list) -> list:
    """Horizontal-flip test-time augmentation built from ``test_pipeline``.

    The transforms before ``PackDetInputs`` are kept; the packing step is run
    once for the original and once for the flipped image, and records the
    flip in the meta information so that ``DetTTAModel`` can undo it.
    """
    steps = [deepcopy(t) for t in test_pipeline]
    pack = None
    if steps and 'PackDetInputs' in str(steps[-1].get('type', '')):
        pack = steps.pop()
    meta_keys = list((pack or {}).get(
        'meta_keys',
        ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')))
    for key in ('flip', 'flip_direction'):
        if key not in meta_keys:
            meta_keys.append(key)
    flips = [
        dict(type='RandomFlip', prob=1.),
        dict(type='RandomFlip', prob=0.)
    ]
    pack = dict(type='PackDetInputs', meta_keys=tuple(meta_keys))
    return steps + [dict(type='TestTimeAug', transforms=[flips, [pack]])]


def is_segmentation(cfg: Config) -> bool:
    """A config of MMSegmentation (its runtime sets ``default_scope='mmseg'``)."""
    return cfg.get('default_scope') == 'mmseg'


def trigger_seg_visualization_hook(cfg: Config, args) -> Config:
    """``--show``/``--show-dir`` for a segmentation config, as MMSegmentation's
    test.py (its ``SegVisualizationHook`` draws, the visualizer saves), but for
    every test image instead of every 50th (the hook's default interval)."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ConfigCheckError(
            '--show/--show-dir need default_hooks.visualization (mmseg\'s '
            "dict(type='SegVisualizationHook')) in the config.")
    hook['draw'] = True
    hook['interval'] = 1
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def enable_tta(cfg: Config) -> None:
    """Wrap the model with ``DetTTAModel`` and use the TTA test pipeline (for
    a segmentation config: its ``tta_model`` and ``tta_pipeline``)."""
    if is_segmentation(cfg) and 'tta_pipeline' not in cfg:
        raise ConfigCheckError(
            '--tta with a segmentation config needs tta_pipeline in the config '
            '(mmseg\'s dataset configs define one, e.g. multi-scale resize '
            'and flip); add it, or test without --tta.')
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, '
                      'we will set it as default.')
        cfg.tta_model = dict(
            type='DetTTAModel',
            tta_cfg=dict(
                nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    test_data_cfg = cfg.test_dataloader.dataset
    while 'dataset' in test_data_cfg:
        test_data_cfg = test_data_cfg['dataset']
    if 'tta_pipeline' not in cfg:
        warnings.warn('Cannot find ``tta_pipeline`` in config, '
                      'we will set it as default (horizontal flip).')
        cfg.tta_pipeline = default_tta_pipeline(test_data_cfg.pipeline)
    # batch_shapes_cfg fixes the output image size, which TTA cannot handle.
    if 'batch_shapes_cfg' in test_data_cfg:
        test_data_cfg.batch_shapes_cfg = None
    test_data_cfg.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def check_checkpoint_covers_model(model, checkpoint: str) -> None:
    """Refuse a checkpoint that leaves tensors of ``model`` missing or with
    another shape (mmengine would load it with ``strict=False``)."""
    # A remote checkpoint is downloaded (weights only) into torch's hub
    # cache here; mmengine's load afterwards reads the cached file.
    check_coverage(
        model_state_for_checkpoint(model),
        extract_state_dict(load_any_checkpoint(checkpoint)),
        backbone=False,
        source=f'Checkpoint {checkpoint}',
        opt_in='pass --allow-partial-checkpoint (the rest keeps its random '
        'initialisation and the metrics say little)')


def main():
    args = parse_args()
    # Reduce the number of repeated compilations and improve
    # testing speed.
    setup_cache_size_limit_of_dynamo()

    try:
        cfg = load_config(args.config, args.launcher, args.cfg_options,
                          args.work_dir)
        check_checkpoint_path(args.checkpoint, 'the checkpoint argument')
        if args.out is not None and \
                not args.out.endswith(('.pkl', '.pickle')):
            raise ConfigCheckError(
                f'--out {args.out}: the output file must be a pickle file '
                '(.pkl or .pickle).')
        roi_head = cfg.model.get('roi_head') or {}
        if args.tta and roi_head.get('mask_head') is not None:
            raise ConfigCheckError(
                '--tta merges boxes only (mmdet\'s DetTTAModel does not '
                'support instance segmentation); test this config without '
                '--tta.')
        check_config(cfg, mode='test')
    except ConfigCheckError as e:
        sys.exit(f'{osp.basename(__file__)}: error: {e}')
    cfg.load_from = args.checkpoint

    try:
        if args.show or args.show_dir:
            cfg = trigger_seg_visualization_hook(cfg, args) \
                if is_segmentation(cfg) else trigger_visualization_hook(cfg, args)
        if args.tta:
            enable_tta(cfg)
    except ConfigCheckError as e:
        sys.exit(f'{osp.basename(__file__)}: error: {e}')

    try:
        with safe_checkpoint_loading():
            runner = build_runner(cfg, args.launcher)
            if not args.allow_partial_checkpoint:
                check_checkpoint_covers_model(runner.model, args.checkpoint)

            # add `DumpResults` dummy metric
            if args.out is not None:
                dump = DumpResults if is_segmentation(cfg) else DumpDetResults
                runner.test_evaluator.metrics.append(
                    dump(out_file_path=args.out))

            # start testing
            runner.test()
    except (CheckpointLoadError, PartialCheckpointError) as e:
        sys.exit(f'{osp.basename(__file__)}: error: {e}')
    # The runner's DDP wrapper holds the process group: drop it first, so that
    # close_distributed frees the group while the interpreter is alive.
    del runner
    close_distributed()


if __name__ == '__main__':
    main()
