"""torch.compile: every attention backbone traces as ONE graph (no graph break) in train and eval mode,
and the compiled model (AOTAutograd, forward and backward) matches eager."""
import pytest
import torch
import torch._dynamo as dynamo

from mmattn.models import CBAMResNet, ECAResNet, EPSANet, SAResNet, SEResNet, SGEResNet

BACKBONES = [
    ('se', lambda: SEResNet(50, base_channels=16)),
    ('eca', lambda: ECAResNet(50, base_channels=16)),
    ('sa', lambda: SAResNet(50, base_channels=16, groups=8)),
    ('cbam', lambda: CBAMResNet(50, base_channels=16)),
    ('sge', lambda: SGEResNet(50, base_channels=16, groups=8)),
    ('epsa', lambda: EPSANet(50, base_channels=16, conv_groups=(1, 2, 4, 4), psa_reduction=2)),
    ('se18', lambda: SEResNet(18, base_channels=16, reduction=4)),
]

LAYOUT_DEPENDENT = [b for b in BACKBONES if b[0] in ('sa', 'cbam', 'sge')]


@pytest.mark.parametrize('name,build', BACKBONES, ids=[b[0] for b in BACKBONES])
def test_no_graph_break(name, build):
    _assert_one_graph(build(), torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize('name,build', LAYOUT_DEPENDENT, ids=[b[0] for b in LAYOUT_DEPENDENT])
def test_no_graph_break_channels_last(name, build):
    """The layers with layout-dependent eager paths trace as one graph on channels-last too."""
    model = build().to(memory_format=torch.channels_last)
    _assert_one_graph(model, torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last))


def _assert_one_graph(model, x):
    for mode in ('train', 'eval'):
        getattr(model, mode)()
        dynamo.reset()
        explained = dynamo.explain(model)(x)
        assert explained.graph_break_count == 0, (mode, [str(r.reason)[:300] for r in explained.break_reasons])
        assert explained.graph_count == 1


@pytest.mark.parametrize('name,build', BACKBONES[:5], ids=[b[0] for b in BACKBONES[:5]])
def test_compiled_matches_eager(name, build):
    torch.manual_seed(0)
    model = build()
    model.train()
    x = torch.randn(2, 3, 64, 64)
    dynamo.reset()
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    outs = compiled(x)
    sum(o.square().mean() for o in outs).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.load_state_dict(state)  # undo the running-statistics update
    model.zero_grad()
    ref = model(x)
    sum(o.square().mean() for o in ref).backward()
    for a, b in zip(outs, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for k, p in model.named_parameters():
        torch.testing.assert_close(grads[k], p.grad, rtol=1e-3, atol=1e-5, msg=k)
