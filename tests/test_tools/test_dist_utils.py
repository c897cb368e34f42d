"""close_distributed: the gloo process group is freed while the interpreter is alive.

A gloo group left alive until interpreter shutdown can abort the process after a finished run
(see ``close_distributed``); these tests check, in one process with a group of one rank, that
the group's worker threads are gone once ``close_distributed`` returns.
"""
import gc
import os
import warnings

import pytest
import torch
import torch.distributed as dist
from tools_helpers import free_port
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmattn.utils import close_distributed
from mmattn.utils.dist_utils import _gloo_worker_threads

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and os.path.isdir('/proc/self/task')),
    reason='needs torch.distributed and /proc to count the gloo threads')


@pytest.fixture
def gloo_world_of_one():
    assert not dist.is_initialized()
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0, world_size=1)
    try:
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        gc.collect()


def _trained_ddp_model():
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Linear(4, 2))
    model(torch.randn(3, 4)).sum().backward()  # an all-reduce through the group
    return model


class _Owner:
    """Stands for the runner: it owns the DDP model and sits in a reference cycle, as mmengine's
    runner does, so only the garbage collector frees it."""

    def __init__(self, model):
        self.model = model
        self.me = self


def test_close_distributed_frees_a_group_held_by_a_dropped_runner(gloo_world_of_one):
    owner = _Owner(_trained_ddp_model())
    assert _gloo_worker_threads() > 0
    gc.disable()  # so that only close_distributed can free the cycle
    try:
        del owner
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            close_distributed()
    finally:
        gc.enable()
    assert not dist.is_initialized()
    assert _gloo_worker_threads() == 0


def test_close_distributed_warns_while_a_model_still_holds_the_group(gloo_world_of_one):
    model = _trained_ddp_model()
    with pytest.warns(RuntimeWarning, match='still referenced'):
        close_distributed()
    assert not dist.is_initialized()
    assert _gloo_worker_threads() > 0
    del model  # the last owner: the group's destructor joins its threads now
    gc.collect()
    assert _gloo_worker_threads() == 0


def test_close_distributed_without_a_group_does_nothing():
    assert not dist.is_initialized()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        close_distributed()
    assert not dist.is_initialized()
