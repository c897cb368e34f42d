"""Every backbone family computes the same with the fused paths as with the plain formulas
(``with mmattn.fused.fused(False)``): outputs, input and parameter gradients and BN statistics, in
inference and training, float64 and float32, NCHW and channels-last, frozen stages, with_cp."""
import copy

import pytest
import torch

from mmattn.fused import fused
from mmattn.models import CBAMResNet, ECAResNet, EPSANet, SAResNet, SEResNet, SGEResNet
from perturb import TINY, randomised

FAMILIES = [
    ('se', lambda **kw: SEResNet(50, **TINY, **kw)),
    ('eca', lambda **kw: ECAResNet(50, kernel_size=3, **TINY, **kw)),
    ('sa', lambda **kw: SAResNet(50, groups=8, **TINY, **kw)),
    ('cbam', lambda **kw: CBAMResNet(50, **TINY, **kw)),
    ('sge', lambda **kw: SGEResNet(50, groups=8, **TINY, **kw)),
    ('epsa', lambda **kw: EPSANet(50, conv_groups=(1, 2, 4, 4), psa_reduction=2, **TINY, **kw)),
    ('se18', lambda **kw: SEResNet(18, reduction=4, **TINY, **kw)),
]
SETTINGS = {  # name: (backbone kwargs, dtype, channels_last, train)
    'eval-f32-nhwc': ({}, torch.float32, True, False),
    'train-f64': ({}, torch.float64, False, True),
    'train-frozen-norm_eval-f32-nhwc': (dict(frozen_stages=1, norm_eval=True), torch.float32, True, True),
    'train-with_cp-f64': (dict(with_cp=True), torch.float64, False, True),
}


def _run(model, x, train, plain):
    model.train(train)
    model.zero_grad()
    x = x.clone().requires_grad_(train)
    with fused(False if plain else None), torch.set_grad_enabled(train):
        outs = model(x)
        if train:
            sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in outs).backward()
    grads = [x.grad] if train else []
    grads += [p.grad for p in model.parameters() if p.grad is not None]
    return [o.detach() for o in outs] + grads + list(model.buffers())


@pytest.mark.parametrize('setting', list(SETTINGS))
@pytest.mark.parametrize('name,build', FAMILIES, ids=[f[0] for f in FAMILIES])
def test_fused_backbone_equals_plain(name, build, setting):
    kwargs, dtype, channels_last, train = SETTINGS[setting]
    model = randomised(build(**kwargs), dtype)
    x = torch.randn(2, 3, 32, 32, dtype=dtype)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    plain_model = copy.deepcopy(model)
    mine, ref = _run(model, x, train, False), _run(plain_model, x, train, True)
    assert len(mine) == len(ref)
    tol = 1e-9 if dtype == torch.float64 else 2e-4
    for i, (a, b) in enumerate(zip(mine, ref)):
        scale = max(b.abs().max().item(), 1.0) if b.is_floating_point() and b.numel() else 1.0
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale, msg=f'{name} {setting}: tensor {i}')
    if 'frozen' in setting:  # frozen stages got no gradient, the others did
        assert all(p.grad is None for p in model.layer1.parameters())
        assert all(p.grad is not None for p in model.layer2.parameters())
