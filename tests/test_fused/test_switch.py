"""The one switch of the fused paths (``mmattn.fused.config``) and the door's choice of path."""
import pytest
import torch

import mmattn.fused as fused_pkg
from mmattn.fused import fused, fused_enabled, gated_residual, set_fused
from mmattn.layers import CBAM, ECAModule, PSAModule, SEModule, ShuffleAttention, SpatialGroupEnhance


@pytest.fixture(autouse=True)
def _defaults(monkeypatch):
    monkeypatch.delenv('MMATTN_FUSED', raising=False)
    set_fused(None)
    yield
    set_fused(None)


def test_defaults_cpu_on_cuda_plain():
    # nobody measured the fused paths on CUDA: plain there unless forced
    assert fused_enabled('cpu') and not fused_enabled('cuda') and not fused_enabled('mps')
    set_fused(True)
    assert fused_enabled('cuda')
    set_fused(False)
    assert not fused_enabled('cpu')


@pytest.mark.parametrize('value,cpu,cuda', [('0', False, False), ('off', False, False), ('1', True, True),
                                            ('auto', True, False), ('', True, False)])
def test_environment_variable(monkeypatch, value, cpu, cuda):
    monkeypatch.setenv('MMATTN_FUSED', value)
    assert (fused_enabled('cpu'), fused_enabled('cuda')) == (cpu, cuda)
    set_fused(True)  # code wins over the environment
    assert fused_enabled('cpu') and fused_enabled('cuda')


def test_invalid_settings_say_what_is_valid(monkeypatch):
    monkeypatch.setenv('MMATTN_FUSED', 'maybe')
    with pytest.raises(ValueError, match=r"MMATTN_FUSED='maybe': use 1 .* 0 .* or auto"):
        fused_enabled('cpu')
    with pytest.raises(TypeError, match='True, False or None'):
        set_fused('yes')


def test_context_restores_the_previous_setting():
    set_fused(True)
    with fused(False):
        assert not fused_enabled('cpu')
        with fused(None):
            assert fused_enabled('cpu') and not fused_enabled('cuda')
    assert fused_enabled('cuda')
    with pytest.raises(RuntimeError):
        with fused(False):
            raise RuntimeError
    assert fused_enabled('cuda')


def test_every_layer_with_a_fast_path_declares_it():
    assert {SEModule, ECAModule, CBAM, ShuffleAttention, SpatialGroupEnhance} <= set(fused_pkg.FUSED_RESIDUALS)
    assert PSAModule in fused_pkg.FUSED_FORWARDS


def _spy(monkeypatch):
    calls = []
    real = fused_pkg.FUSED_RESIDUALS[SEModule]
    monkeypatch.setitem(fused_pkg.FUSED_RESIDUALS, SEModule,
                        lambda gate, x, identity, out_x: calls.append(out_x) or real(gate, x, identity, out_x))
    return calls


class _Door(torch.nn.Module):

    def __init__(self, gate):
        super().__init__()
        self.gate = gate

    def forward(self, x, identity):
        return gated_residual(self.gate, x, identity)


def test_door_takes_the_plain_formula_when_off_and_while_tracing(monkeypatch):
    calls = _spy(monkeypatch)
    se = SEModule(8, reduction=2).eval()
    x, identity = torch.randn(2, 8, 3, 3), torch.randn(2, 8, 3, 3)
    expected = identity + se(x)
    with fused(False):
        torch.testing.assert_close(gated_residual(se, x, identity), expected)
    traced = torch.jit.trace(_Door(se), (x, identity), check_trace=False)
    torch.testing.assert_close(traced(x, identity), expected)
    assert calls == []
    with torch.no_grad():
        torch.testing.assert_close(gated_residual(se, x.clone(), identity, overwrite_x=True), expected)
    assert calls == [True]


def test_door_writes_over_x_only_when_allowed(monkeypatch):
    """No autograd: out_x is the caller's overwrite_x. Autograd: only inside an exact BN rebuild."""
    calls = _spy(monkeypatch)
    se = SEModule(8, reduction=2)
    bn = torch.nn.BatchNorm2d(8)
    u = torch.randn(2, 8, 3, 3, requires_grad=True)
    identity = torch.randn(2, 8, 3, 3)
    with torch.no_grad():
        gated_residual(se, bn(u), identity, overwrite_x=False)
    gated_residual(se, bn(u), identity, overwrite_x=True)  # no BN given: x is kept
    gated_residual(se, bn(u), identity, overwrite_x=True, bn=bn, bn_input=u)
    gn = torch.nn.GroupNorm(2, 8)  # not a per-channel affine of u: cannot be rebuilt
    gated_residual(se, gn(u), identity, overwrite_x=True, bn=gn, bn_input=u)
    assert calls == [False, False, True, False]
