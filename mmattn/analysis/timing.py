"""Timing and peak memory of callables, compared within one run (torch only).

Protocol: every callable is warmed up, then timed in ``rounds`` rounds of ``iters`` calls each, the
callables interleaved and their order rotated every round, so that drift (clocks, other processes)
hits all of them alike. A comparison of two callables is the median over rounds of the ratio of their
times *within* a round (:func:`paired_ratio`), with the lowest and highest round: pairing cancels the
drift between rounds that a ratio of two medians would keep.
"""
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously; CPU needs nothing)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved_rounds(steps: Dict[str, Callable[[], object]], device: torch.device, rounds: int, iters: int,
                       warmup: int = 1, deadline: Optional[float] = None) -> Dict[str, List[float]]:
    """Seconds per call of every step, one entry per round (see the module docstring).

    Args:
        steps: name -> a callable doing one iteration.
        device: where the steps run (synchronised around each timed block).
        rounds, iters: number of rounds and of calls per step in a round.
        warmup: untimed calls of every step before the first round.
        deadline: a ``time.monotonic()`` value; no round starts after it (fewer rounds are returned,
            at least one).
    """
    if rounds < 1 or iters < 1 or warmup < 0:
        raise ValueError(f'interleaved_rounds: need rounds >= 1, iters >= 1, warmup >= 0; got '
                         f'rounds={rounds}, iters={iters}, warmup={warmup}')
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    synchronize(device)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        if r and deadline is not None and time.monotonic() > deadline:
            break
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            for _ in range(iters):
                steps[name]()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / iters)
    return times


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> Tuple[float, float, float]:
    """Median, min and max over rounds of ``numerator[r] / denominator[r]``.

    With per-round times, ``paired_ratio(base, model)`` is the model's speed relative to ``base``
    (> 1: faster).
    """
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f'paired_ratio: need two equally long, non-empty series, got {len(numerator)} and '
                         f'{len(denominator)} rounds')
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return statistics.median(ratios), min(ratios), max(ratios)


def peak_memory(step: Callable[[], object], device: torch.device) -> Optional[int]:
    """Bytes allocated at the peak of one call of ``step`` above what was allocated before it (activations,
    gradients and temporaries; not the resident weights). CUDA only: None elsewhere, where no allocator
    statistics of tensor bytes exist."""
    if device.type != 'cuda':
        return None
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
