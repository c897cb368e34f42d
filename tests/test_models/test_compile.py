"""torch.compile: every attention backbone compiles as ONE graph (``fullgraph=True`` fails on any graph
break) in train and eval mode, and the compiled model (AOTAutograd, forward and backward) matches eager.

Compiling takes the plain formulas (the fused door is off while tracing, tests/test_fused/test_switch.py),
which have no layout-dependent branch, so NCHW inputs cover channels-last as well.
"""
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


def _compiled(model):
    dynamo.reset()
    return torch.compile(model, backend='aot_eager', fullgraph=True)


@pytest.mark.parametrize('name,build', BACKBONES, ids=[b[0] for b in BACKBONES])
def test_compiles_to_one_graph_and_matches_eager(name, build):
    torch.manual_seed(0)
    model = build()
    x = torch.randn(2, 3, 64, 64)

    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    outs = _compiled(model)(x)
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

    model.eval()
    with torch.no_grad():
        for a, b in zip(_compiled(model)(x), model(x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
