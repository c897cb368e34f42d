# Runtime for short CPU runs: frequent logs, keep the last two checkpoints.
_base_ = 'mmdet::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
# A fixed seed makes the quick-start numbers reproducible.
randomness = dict(seed=0)
