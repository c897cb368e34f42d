"""Utilities of mmattn.

Importing this package needs only torch and numpy; the config checks import
mmengine and mmdet lazily.
"""
from .checkpoint import (checkpoint_safe_globals,
                         register_checkpoint_safe_globals)
from .config_check import (ConfigCheckError, check_checkpoint_path,
                           check_config, check_data, check_model_types)
from .dist_utils import close_distributed, setup_cpu_distributed
from .runner import build_runner, load_config

__all__ = [
    'register_checkpoint_safe_globals', 'checkpoint_safe_globals',
    'ConfigCheckError', 'check_config', 'check_data', 'check_model_types',
    'check_checkpoint_path', 'setup_cpu_distributed', 'close_distributed', 'load_config',
    'build_runner'
]
