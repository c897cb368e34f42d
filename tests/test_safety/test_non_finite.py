"""Training from scratch is finite for every backbone family, and a run that turns non-finite stops,
naming the iteration, before it writes a checkpoint."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import mmattn.models  # noqa: F401  registers the backbones
from mmattn.engine import NonFiniteCheckHook, NonFiniteTrainingError
from mmattn.fused import fused
from mmdet.registry import MODELS

# mmdet's defaults: zero_init_residual=True, no pretrained weights. The last norm of every block starts
# at zero, so every attention gate sees an all-zero input at the first step.
FAMILIES = {
    'ResNet': dict(),
    'SEResNet': dict(),
    'ECAResNet': dict(),
    'SAResNet': dict(groups=4),
    'CBAMResNet': dict(),
    'SGEResNet': dict(groups=4),
    'EPSANet': dict(base_channels=64),
}


# Every family with the default (fast) path; SGE, whose group statistics have no spread at the start,
# also with the plain layers and at batch 1 in train mode.
@pytest.mark.parametrize('family, batch, fast', [(f, 2, None) for f in sorted(FAMILIES)] +
                         [('SGEResNet', 2, False), ('SGEResNet', 1, None), ('SGEResNet', 1, False)])
def test_from_scratch_step_has_finite_gradients(family, batch, fast):
    with fused(fast):
        _check_finite_step(family, batch)


def _check_finite_step(family, batch):
    torch.manual_seed(0)
    cfg = dict(type=family, depth=50, base_channels=16, num_stages=2, strides=(1, 2), dilations=(1, 1),
               out_indices=(0, 1), norm_eval=False)
    cfg.update(FAMILIES[family])
    backbone = MODELS.build(cfg)
    backbone.init_weights()
    backbone.train()
    outs = backbone(torch.randn(batch, 3, 16, 16))
    sum(out.square().mean() for out in outs).backward()
    grads = {n: p.grad for n, p in backbone.named_parameters() if p.grad is not None}
    assert grads
    bad = [n for n, g in grads.items() if not torch.isfinite(g).all()]
    assert not bad, f'{family}: non-finite gradients in {bad[:5]}'


class _Toy(BaseModel):
    """loss = sum(w * x); with ``sqrt_at_zero`` also sqrt(0 * w), finite with a NaN gradient."""

    def __init__(self, sqrt_at_zero=False):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.sqrt_at_zero = sqrt_at_zero

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs)
        loss = (x * self.w).sum()
        if self.sqrt_at_zero:
            loss = loss + (self.w * 0).sqrt().sum()
        return {'loss': loss}


def _run(tmp_path, data, model, clip_grad=None):
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=dict(dataset=[dict(inputs=x) for x in data],
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=1, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01), clip_grad=clip_grad),
        train_cfg=dict(by_epoch=False, max_iters=len(data)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        custom_hooks=[NonFiniteCheckHook()],
        default_scope='mmdet')
    with pytest.raises(NonFiniteTrainingError) as err:
        runner.train()
    return str(err.value)


def test_non_finite_loss_stops_at_its_iteration(tmp_path):
    data = [torch.ones(2), torch.ones(2), torch.tensor([1., float('nan')]), torch.ones(2)]
    msg = _run(tmp_path, data, _Toy())
    assert 'Training stopped at iteration 3: the loss is not finite (loss=nan)' in msg
    assert (tmp_path / 'iter_2.pth').exists()
    assert not (tmp_path / 'iter_3.pth').exists()


@pytest.mark.parametrize('clip_grad', [None, dict(max_norm=10)])
def test_non_finite_gradient_stops_at_its_iteration(tmp_path, clip_grad):
    msg = _run(tmp_path, [torch.ones(2)] * 3, _Toy(sqrt_at_zero=True), clip_grad)
    assert 'Training stopped at iteration 1' in msg
    assert ('gradient norm is nan' if clip_grad else 'weight tensors are not finite') in msg
    assert not (tmp_path / 'iter_1.pth').exists()
