"""Hooks that keep a training run honest: stop it when it turns non-finite, and make ``--resume``
continue exactly where the checkpoint left off.

* :class:`NonFiniteCheckHook` is mmdet's ``CheckInvalidLossHook`` checking every iteration, with an
  error that names the iteration and what turned non-finite: the loss (or one of its terms), the
  gradient norm the optimizer wrapper logs when ``clip_grad`` is set, or the weights after the
  optimizer step (which catches a non-finite gradient without ``clip_grad``). The run stops before the
  checkpoint hook of that iteration, so no non-finite checkpoint is written.
* :class:`RandomStateHook` saves the random states that training draws from (torch, numpy, Python's
  ``random``, CUDA when in use, and the seed of the data sampler; of every rank) with every checkpoint
  and restores them on ``--resume``, so a resumed epoch-based run continues bit-identically.
  Validation runs on a copy of the states, so it does not shift the training stream and the result
  does not depend on whether the run was interrupted before or after a validation.
"""
import random
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmdet.engine.hooks import CheckInvalidLossHook
from mmengine.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop, EpochBasedTrainLoop


class NonFiniteTrainingError(RuntimeError):
    """The loss, gradient norm or weights of a training run became NaN or infinite."""


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    while hasattr(model, 'module') and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


def _as_float(value) -> Optional[float]:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    if isinstance(value, (int, float, np.floating)):
        return float(value)
    return None


@HOOKS.register_module()
class NonFiniteCheckHook(CheckInvalidLossHook):
    """Stop training at the first iteration whose loss, gradient norm or weights are not finite.

    Args:
        interval (int): check every ``interval`` iterations. Defaults to 1.
        check_weights (bool): also check the weights after the optimizer step. Defaults to True.
    """

    def __init__(self, interval: int = 1, check_weights: bool = True) -> None:
        super().__init__(interval=interval)
        self.check_weights = check_weights

    def _where(self, runner) -> str:
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1})'
        return where

    def _fail(self, runner, what: str) -> None:
        raise NonFiniteTrainingError(
            f'Training stopped at {self._where(runner)}: {what}. No checkpoint was written for this '
            'iteration. Usual causes: a learning rate too high for the batch size (check '
            'auto_scale_lr), no gradient clipping (optim_wrapper.clip_grad), or broken annotations; '
            'resume from the last checkpoint after fixing the cause.')

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        terms = {k: _as_float(v) for k, v in (outputs or {}).items()}
        terms = {k: v for k, v in terms.items() if v is not None}
        if any(not np.isfinite(v) for v in terms.values()):
            shown = ', '.join(f'{k}={v:.4g}' for k, v in terms.items() if 'loss' in k)
            self._fail(runner, f'the loss is not finite ({shown})')
        hub = runner.message_hub
        # With AMP's dynamic loss scale an overflowing gradient is expected now and then: the scaler
        # skips that step (the weights check below still catches a real divergence).
        amp = hasattr(runner.optim_wrapper, 'loss_scaler')
        if 'train/grad_norm' in hub.log_scalars and not amp:
            grad_norm = float(hub.get_scalar('train/grad_norm').current())
            if not np.isfinite(grad_norm):
                self._fail(runner, f'the gradient norm is {grad_norm} (the loss is {terms.get("loss")})')
        if self.check_weights:
            named = [(n, p) for n, p in _unwrap(runner.model).named_parameters() if p.requires_grad]
            if named:
                finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named])
                if not bool(finite.all()):
                    names = [n for (n, _), ok in zip(named, finite.tolist()) if not ok]
                    self._fail(runner, f'{len(names)} weight tensors are not finite after the optimizer step '
                               f'(first: {names[0]}), i.e. a gradient was not finite although the loss is '
                               f'({terms.get("loss")})')


def _sampler(runner):
    loop = getattr(runner, '_train_loop', None)
    loader = getattr(loop, 'dataloader', None) if isinstance(loop, BaseLoop) else None
    return getattr(loader, 'sampler', None)


def capture_random_state(runner=None) -> Dict[str, Any]:
    """The random states as tensors and plain Python values (loadable with ``weights_only=True``)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        'torch': torch.get_rng_state(),
        'numpy': dict(keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                      has_gauss=int(has_gauss), cached_gaussian=float(cached)),
        'python': random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    sampler = _sampler(runner) if runner is not None else None
    if isinstance(getattr(sampler, 'seed', None), int):
        state['sampler_seed'] = sampler.seed
    return state


def restore_random_state(state: Dict[str, Any], runner=None) -> None:
    """Set the random states saved by :func:`capture_random_state`."""
    torch.set_rng_state(state['torch'])
    np_state = state['numpy']
    np.random.set_state(('MT19937', np_state['keys'].numpy().astype(np.uint32), np_state['pos'],
                         np_state['has_gauss'], np_state['cached_gaussian']))
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    sampler = _sampler(runner) if runner is not None else None
    if 'sampler_seed' in state and sampler is not None and hasattr(sampler, 'seed'):
        sampler.seed = state['sampler_seed']


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random states with every checkpoint; restore them when training resumes from one.

    The states are restored in ``before_train``, after the model, optimizer and schedulers are resumed
    and before the first epoch's data are drawn: an epoch-based run continues bit-identically. In a
    distributed run the states of every rank are gathered at the end of each epoch (the checkpoint is
    written by rank 0 only) and each rank gets its own back. An iteration-based run re-draws the
    skipped batches of the interrupted epoch after that point, so it continues with the saved states
    but not bit-identically; checkpoints saved between epochs of a distributed run hold rank 0's
    states only.
    """
    # Before CheckpointHook (VERY_LOW) at the end of an epoch; after the other hooks' before_train.
    priority = 'LOW'

    def __init__(self) -> None:
        self._pending: Optional[Dict[str, Any]] = None
        self._pending_iter: Optional[int] = None
        self._train_state: Optional[Dict[str, Any]] = None
        self._rank_states: Optional[tuple] = None  # (iteration, [state of each rank])

    def after_train_epoch(self, runner) -> None:
        if runner.world_size > 1:
            from mmengine.dist import all_gather_object
            self._rank_states = (runner.iter, all_gather_object(capture_random_state(runner)))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # During validation (best-checkpoint saving) the training states are the ones set aside.
        state = dict(self._train_state or capture_random_state(runner))
        if self._rank_states is not None and self._rank_states[0] == runner.iter:
            state['ranks'] = self._rank_states[1]
        checkpoint['random_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('random_state')
        self._pending_iter = (checkpoint.get('meta') or {}).get('iter')

    def before_train(self, runner) -> None:
        state, self._pending = self._pending, None
        # load_from (fine-tuning) starts at iteration 0; only a resumed run continues the states.
        if state is None or runner.iter == 0 or runner.iter != self._pending_iter:
            return
        ranks = state.get('ranks')
        if ranks is not None and len(ranks) == runner.world_size:
            state = ranks[runner.rank]
        elif runner.world_size > 1 or ranks is not None:
            runner.logger.warning(
                f'The checkpoint holds the random states of {len(ranks) if ranks else 1} process(es), this '
                f'run has {runner.world_size}: every rank continues from rank 0\'s states, so the resumed '
                'run is not bit-identical to an uninterrupted one.')
        restore_random_state(state, runner)
        runner.logger.info(f'Restored the random states of iteration {runner.iter} from the checkpoint.')

    def before_val(self, runner) -> None:
        # Only validation inside training; a standalone runner.val() has no training stream.
        if isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            self._train_state = capture_random_state(runner)

    def after_val(self, runner) -> None:
        state, self._train_state = self._train_state, None
        if state is not None:
            restore_random_state(state, runner)


def add_default_hooks(cfg) -> None:
    """Add :class:`RandomStateHook` and :class:`NonFiniteCheckHook` to ``cfg.custom_hooks`` unless the
    config already has them (or mmdet's ``CheckInvalidLossHook``, which then stays as configured)."""
    hooks = list(cfg.get('custom_hooks') or [])
    types = {h.get('type') if isinstance(h.get('type'), str) else getattr(h.get('type'), '__name__', '')
             for h in hooks if isinstance(h, dict)}
    if 'RandomStateHook' not in types:
        hooks.append(dict(type='RandomStateHook'))
    if not types & {'NonFiniteCheckHook', 'CheckInvalidLossHook'}:
        hooks.append(dict(type='NonFiniteCheckHook'))
    cfg.custom_hooks = hooks
