"""Train a detector (MMDetection 3.x) or a segmentor (MMSegmentation 1.x) with the mmattn attention
backbones.

The arguments and behaviour follow ``tools/train.py`` of MMDetection 3.3.0
(MMSegmentation's is the same runner; a segmentation config, with its
``default_scope='mmseg'``, needs the ``seg`` extra, which the error for a
missing mmseg names). In addition this script

* imports ``mmattn.models``, so configs find the mmattn backbones even
  without ``custom_imports``, from any working directory;
* loads every checkpoint (``--resume``, ``load_from``, ``Pretrained``) with
  ``torch.load(weights_only=True)`` and the data types of mmengine
  checkpoints allow-listed for this run only (see ``mmattn.utils.checkpoint``):
  a checkpoint cannot run code;
* checks the config before building the runner (annotation files and their
  boxes and masks, images, model types, checkpoint paths, the file to resume
  from) and fails with a message that names the file or key and what to do;
* adds two hooks of ``mmattn.engine``: ``NonFiniteCheckHook`` stops the run,
  naming the iteration, when the loss, gradient norm or weights become NaN or
  infinite; ``RandomStateHook`` saves the random states with each checkpoint
  and restores them on ``--resume``, so a resumed run continues exactly;
* runs distributed training on CPU with the gloo backend when CUDA is not
  available.

Example::

    python tools/train.py configs/quickstart/mask-rcnn_se-r50_fpn_toy-coco.py
    python tools/train.py configs/quickstart/fpn_sa-r50_toy-seg.py
"""
import argparse
import os
import os.path as osp
import sys
import warnings

# mmengine 0.10.x imports pkg_resources, which setuptools >= 81 deprecates
# with a warning on every start; it is noise for users of this tool.
warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated', category=UserWarning)

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402

import mmattn.models  # noqa: E402,F401  registers the mmattn backbones
from mmattn.engine import NonFiniteTrainingError, add_default_hooks  # noqa: E402
from mmattn.utils import (CheckpointLoadError, ConfigCheckError, build_runner,  # noqa
                          close_distributed, check_config, load_config,
                          safe_checkpoint_loading)
from mmattn.utils.config_check import (check_auto_resume,  # noqa: E402
                                       check_resume_checkpoint)
from mmattn.utils.pretrained import PartialCheckpointError  # noqa: E402
from mmdet.utils import setup_cache_size_limit_of_dynamo  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
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
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/train.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args) -> Config:
    """Load the config and apply the command line options to it."""
    cfg = load_config(args.config, args.launcher, args.cfg_options,
                      args.work_dir)

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level='WARNING')
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type is '
                f'`OptimWrapper` but got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        auto_scale_lr = cfg.get('auto_scale_lr') or {}
        if 'enable' in auto_scale_lr and 'base_batch_size' in auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or '
                               '"auto_scale_lr.enable" or '
                               '"auto_scale_lr.base_batch_size" in your'
                               ' configuration file.')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main():
    args = parse_args()
    # Reduce the number of repeated compilations and improve
    # training speed.
    setup_cache_size_limit_of_dynamo()

    try:
        cfg = build_cfg(args)
    except ConfigCheckError as e:
        sys.exit(f'{osp.basename(__file__)}: error: {e}')
    add_default_hooks(cfg)
    try:
        if args.resume == 'auto':
            check_auto_resume(cfg.work_dir)
        elif args.resume is not None:
            check_resume_checkpoint(args.resume, '--resume')
        check_config(cfg, mode='train')
        if args.amp:
            if not torch.cuda.is_available():
                raise ConfigCheckError(
                    '--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper '
                    'does not run on CPU); drop --amp to train in fp32.')
    except ConfigCheckError as e:
        sys.exit(f'{osp.basename(__file__)}: error: {e}')

    try:
        with safe_checkpoint_loading():
            runner = build_runner(cfg, args.launcher)
            runner.train()
    except (CheckpointLoadError, PartialCheckpointError,
            NonFiniteTrainingError) as e:
        sys.exit(f'{osp.basename(__file__)}: error: {e}')
    # The runner's DDP wrapper holds the process group: drop it first, so that
    # close_distributed frees the group while the interpreter is alive.
    del runner
    close_distributed()


if __name__ == '__main__':
    main()
