"""Utilities of mmattn.

Importing this package needs only torch and numpy; the config checks import
mmengine and mmdet lazily.
"""
from .checkpoint import (CheckpointLoadError, checkpoint_safe_global_names,
                         checkpoint_safe_globals, load_checkpoint_file,
                         mmengine_checkpoint_globals, safe_checkpoint_loading)
from .config_check import (ConfigCheckError, check_checkpoint_path,
                           check_config, check_data, check_model_types)
from .dist_utils import close_distributed, setup_cpu_distributed
from .runner import build_runner, load_config

__all__ = [
    'CheckpointLoadError', 'checkpoint_safe_globals', 'checkpoint_safe_global_names',
    'load_checkpoint_file', 'mmengine_checkpoint_globals', 'safe_checkpoint_loading',
    'ConfigCheckError', 'check_config', 'check_data', 'check_model_types',
    'check_checkpoint_path', 'setup_cpu_distributed', 'close_distributed', 'load_config',
    'build_runner'
]
