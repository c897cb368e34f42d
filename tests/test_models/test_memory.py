"""Training memory of the attention blocks with the fused paths (CPU default): the gate's input (the BN
output) is not kept for the backward but rebuilt from the BN input, so a block keeps no more feature
maps than mmdet's Bottleneck; and where that rebuild would not be exact it is not used."""
import gc
import weakref

import pytest
import torch
from mmengine.registry import DefaultScope

from mmattn.fused import fused, gated_residual
from mmattn.fused.recompute import bn_output_rebuild
from mmattn.models import CBAMResNet, ECAResNet, SAResNet, SEResNet, SGEResNet
from perturb import TINY

BLOCKS = [
    ('se', lambda **kw: SEResNet(50, **TINY, **kw)),
    ('eca', lambda **kw: ECAResNet(50, **TINY, **kw)),
    ('sa', lambda **kw: SAResNet(50, **TINY, groups=8, **kw)),
    ('cbam', lambda **kw: CBAMResNet(50, **TINY, **kw)),
    ('sge', lambda **kw: SGEResNet(50, **TINY, groups=8, **kw)),
    ('se18', lambda **kw: SEResNet(18, **TINY, reduction=4, **kw)),
]


def _norm_output_alive_after_forward(block, norm, x):
    """Whether autograd still holds ``norm``'s output once the block's forward has returned, other than
    as the block's output itself (written over it in place, as mmdet's Bottleneck adds its identity)."""
    ref = []
    handle = norm.register_forward_hook(lambda m, i, o: ref.append(weakref.ref(o)))
    out = block(x)
    handle.remove()
    gc.collect()
    alive = ref[0]() is not None and ref[0]() is not out
    out.sum().backward()  # the backward still works with the rebuilt tensor
    return alive


@pytest.mark.parametrize('norm_eval', [False, True], ids=['bn_train', 'bn_eval'])
@pytest.mark.parametrize('name,build', BLOCKS, ids=[b[0] for b in BLOCKS])
def test_gate_input_is_not_kept_for_backward(name, build, norm_eval):
    model = build(norm_eval=norm_eval)
    model.train()
    block = model.layer2[1]
    norm = block.norm3 if hasattr(block, 'norm3') else block.norm2
    x = torch.randn(2, block.conv1.in_channels, 8, 8, requires_grad=True)
    assert not _norm_output_alive_after_forward(block, norm, x)
    # mmdet's own Bottleneck keeps none either (its add is in place): the reference point
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_rebuild_not_used_where_it_would_not_be_exact():
    # a GroupNorm output cannot be rebuilt by a per-channel affine: it is kept
    model = SEResNet(50, base_channels=16, norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))
    block = model.layer2[1]
    x = torch.randn(2, block.conv1.in_channels, 8, 8, requires_grad=True)
    assert _norm_output_alive_after_forward(block, block.norm3, x)
    # a plugin that is not an mmattn gate sits between the BN and the gate: nothing is rebuilt
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = SEResNet(50, base_channels=16, plugins=[dict(
            cfg=dict(type='ContextBlock', ratio=1. / 4), stages=(False, True, False, False), position='after_conv3')])
    block = model.layer2[1]
    assert len(block.after_conv3_plugin_names) == 2
    assert _norm_output_alive_after_forward(block, block.norm3, x)
    # train-mode SyncBN: one rank cannot recompute the global batch statistics
    sync = torch.nn.SyncBatchNorm(8)
    u = torch.randn(2, 8, 4, 4, requires_grad=True)
    out = torch.nn.BatchNorm2d(8)(u)
    assert bn_output_rebuild(sync, u, out) is None
    sync.eval()
    assert bn_output_rebuild(sync, u, out) is not None


@pytest.mark.parametrize('gate', ['se', 'eca', 'sa', 'cbam', 'sge'])
@pytest.mark.parametrize('training', [True, False])
def test_rebuilt_tensor_matches_and_gradients_equal(training, gate, chunking):
    """With the rebuild (the fused form may then write over the BN output), output and gradients equal
    those of the fused form that keeps the BN output, and those of the plain formula."""
    from mmattn.layers import create_attention
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(16).train(training)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    kwargs = {'se': dict(reduction=4), 'sa': dict(groups=4), 'cbam': dict(reduction=4), 'sge': dict(groups=4)}
    layer = create_attention(gate, 16, **kwargs.get(gate, {}))
    with torch.no_grad():
        for p in layer.parameters():  # away from the identity-like official init
            p.add_(torch.randn_like(p) * 0.3)
    u0, idt = torch.randn(2, 16, 5, 5) * 2 + 3, torch.randn(2, 16, 5, 5)
    results = []
    for mode in ('plain', 'keep', 'rebuild'):
        u = u0.clone().requires_grad_()
        bn.zero_grad()
        layer.zero_grad()
        x = bn(u)
        with fused(mode != 'plain'):
            if mode == 'rebuild':
                ptr = x.data_ptr()
                y = gated_residual(layer, x, idt, overwrite_x=True, bn=bn, bn_input=u)
                if gate in ('se', 'eca', 'cbam'):
                    assert y.data_ptr() == ptr  # written over the BN output
            else:
                y = gated_residual(layer, x, idt)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        results.append([y, u.grad, bn.weight.grad, bn.bias.grad] + [p.grad.clone() for p in layer.parameters()])
    for ref in results[:2]:
        for a, b in zip(results[2], ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name,build', BLOCKS[:5], ids=[b[0] for b in BLOCKS[:5]])
def test_with_cp_keeps_no_intermediate_map(name, build):
    """with_cp=True: a block keeps only its input for the backward, none of its inner feature maps."""
    for with_cp, expect_alive in ((False, True), (True, False)):
        model = build(with_cp=with_cp)
        model.train()
        block = model.layer2[1]
        x = torch.randn(2, block.conv1.in_channels, 8, 8, requires_grad=True)
        assert _norm_output_alive_after_forward(block, block.norm1, x) is expect_alive
        assert x.grad is not None and torch.isfinite(x.grad).all()
