"""The steps ``tools/train.py`` and ``tools/test.py`` share (mmdet's tools, plus mmattn's CPU launcher).

mmengine is imported inside the functions, so ``mmattn.utils`` still imports with torch alone.
"""
import os.path as osp
from typing import Optional

from .dist_utils import setup_cpu_distributed


def load_config(config: str, launcher: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None):
    """Load ``config`` and apply ``--launcher``, ``--cfg-options`` and the work dir, whose priority is
    command line > config > ``./work_dirs/<config name>`` (as in mmdet).

    Raises:
        ConfigCheckError: for a segmentation config without mmseg installed, saying how to install it.
    """
    from mmengine.config import Config

    from .config_check import check_seg_extra
    try:
        cfg = Config.fromfile(config)
    except ModuleNotFoundError as e:
        check_seg_extra(config, error=e)
        raise
    check_seg_extra(config, cfg)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def build_runner(cfg, launcher: str):
    """Set up distributed CPU runs if needed, then build the runner from ``cfg`` (``runner_type`` if the
    config names one) and log the CPU-distributed note."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    dist_msg = setup_cpu_distributed(cfg, launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if dist_msg is not None:
        runner.logger.info(dist_msg)
    return runner
