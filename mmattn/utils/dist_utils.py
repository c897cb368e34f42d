"""Distributed training and testing without CUDA (gloo on CPU).

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and the default
runtime asks for the ``nccl`` backend, and its DDP wrapper passes
``device_ids=[LOCAL_RANK]``; none of this works on a machine without CUDA.
:func:`setup_cpu_distributed` makes ``tools/dist_train.sh`` and
``tools/dist_test.sh`` work there: it switches the backend to ``gloo``,
initialises the process group itself (mmengine skips ``init_dist`` when a
group exists) and makes DDP wrap the CPU model without device ids.
"""
import gc
import os
import subprocess
import warnings
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist

if dist.is_available():
    # torch.distributed.nn.functional takes ``group.WORLD`` as the default argument of its
    # collectives when it is imported. Imported after the group exists (DDP imports it on first
    # use), it would hold the group until interpreter exit, out of close_distributed's reach;
    # imported now, before any group, its defaults are None.
    import torch.distributed.nn  # noqa: F401


def _set_env_from_slurm(port: Optional[int]) -> None:
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(
        f'scontrol show hostname {node_list} | head -n1')
    os.environ.setdefault('MASTER_ADDR', addr)
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ['SLURM_LOCALID']


def _set_env_from_mpi(port: Optional[int]) -> None:
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
    os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
    os.environ['LOCAL_RANK'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']


def setup_cpu_distributed(cfg, launcher: str) -> Optional[str]:
    """Prepare ``cfg`` and the process group for distributed runs on CPU.

    Does nothing when ``launcher`` is ``'none'`` or CUDA is available.

    Args:
        cfg (Config): The config; ``env_cfg.dist_cfg.backend`` is set to
            ``'gloo'`` and ``model_wrapper_cfg`` to a DDP wrapper without
            ``device_ids``.
        launcher (str): ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        str, optional: A message describing the change (to be logged), or
        None if nothing was changed.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return None
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    old_backend = dist_cfg.get('backend', 'nccl')
    dist_cfg['backend'] = 'gloo'

    if not dist.is_initialized():
        port = dist_cfg.get('port')
        if launcher == 'slurm':
            _set_env_from_slurm(port)
        elif launcher == 'mpi':
            _set_env_from_mpi(port)
        elif launcher != 'pytorch':
            raise ValueError(f'Invalid launcher type: {launcher}')
        kwargs = {}
        timeout = dist_cfg.get('timeout')
        if timeout is not None:
            kwargs['timeout'] = timedelta(seconds=timeout)
        dist.init_process_group(backend='gloo', **kwargs)

    # mmengine passes device_ids=[LOCAL_RANK] unless the wrapper config sets
    # it; a CPU module must be wrapped with device_ids=None.
    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    else:
        wrapper_cfg['device_ids'] = None
        wrapper_cfg.pop('output_device', None)
    return (f'CUDA is not available: distributed {launcher} run on CPU with '
            f'the gloo backend instead of {old_backend} '
            f'(rank {dist.get_rank()} of {dist.get_world_size()}).')


def _gloo_worker_threads() -> int:
    """Number of live gloo worker threads in this process (Linux; 0 where ``/proc`` is missing)."""
    task_dir = '/proc/self/task'
    if not os.path.isdir(task_dir):
        return 0
    count = 0
    for tid in os.listdir(task_dir):
        try:
            with open(os.path.join(task_dir, tid, 'comm')) as f:
                count += f.read().strip() == 'pt_gloo_runloop'
        except OSError:  # the thread ended while we listed them
            pass
    return count


def close_distributed() -> None:
    """Destroy the default process group, if any, once the run is over.

    Call it after dropping the runner (``del runner``): its DDP wrapper holds the process group,
    so ``destroy_process_group`` alone leaves the group and its gloo worker threads alive until
    interpreter shutdown. A worker that then drops the last reference to a finished collective's
    tensors needs the GIL, which a finalizing interpreter no longer hands out: the thread is
    unwound through a ``noexcept`` destructor and the process aborts ("terminate called without
    an active exception", SIGABRT) after the run has finished and saved everything, so the
    launcher reports the job as failed. Freed here, while the interpreter is alive, the group's
    destructor waits for its queued work and joins its threads.

    Warns if gloo worker threads are still running afterwards, i.e. something still holds the
    process group.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    gloo_threads_before = _gloo_worker_threads()
    # A runner dropped by the caller sits in reference cycles (hooks, model, optimizer wrapper);
    # collect it while the group is still registered, so its DDP wrapper is not the last owner.
    # destroy_process_group then drops the last references: the group's destructor runs here.
    gc.collect()
    dist.destroy_process_group()
    if gloo_threads_before and _gloo_worker_threads():
        warnings.warn(
            'close_distributed: the gloo process group is still referenced after '
            'destroy_process_group (typically by a DistributedDataParallel model or the runner '
            'that owns it); drop those references before calling close_distributed, or the '
            'process may abort at interpreter exit.',
            RuntimeWarning,
            stacklevel=2)
