"""The device check (tools/analysis_tools/device_check.py) runs every code path on CPU, its comparison
catches a wrong fused form, and mmattn.nets is the mmdet backbones' network (same keys, same outputs)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmattn.analysis import device_check as dc
from mmattn.fused import FUSED_RESIDUALS, fused
from mmattn.layers import SEModule
from mmattn.nets import FAMILIES, build_resnet

#: rows known to fail, as (kind, name, dtype, mode): the fused SA backward forms rstd^3 in float16, which
#: overflows where a channel's variance over H, W is small (the smoke network's 2 x 2 last stage).
#: Remove an entry once its path is fixed (the test then fails while the entry stays).
KNOWN_FAILURES = set()


@pytest.fixture
def one_thread():
    """Tiny networks gain nothing from threads, and on a shared CPU they wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_smoke_run_covers_every_subject_dtype_layout_and_mode(tmp_path, one_thread):
    rc = dc.main(['--device', 'cpu', '--preset', 'smoke', '--out-dir', str(tmp_path), '--time-budget', '600'])
    report = json.loads((tmp_path / 'device_check.json').read_text())
    assert report['meta']['finished'] and not report['skipped_sections'] and not report['errors']
    rows = {(r['kind'], r['name'], r['dtype'], r['layout'], r['mode']): r for r in report['correctness']}
    expected = {(kind, name, dtype, layout, mode)
                for kind, names in (('layer', dc.LAYERS), ('net', dc.ATTENTION_FAMILIES)) for name in names
                for dtype in dc.DTYPES for layout in dc.LAYOUTS for mode in dc.MODES}
    assert set(rows) == expected
    failed = {key[:3] + key[4:] for key, r in rows.items() if r['status'] == 'fail'}
    assert failed == KNOWN_FAILURES, [r for k, r in rows.items() if k[:3] + k[4:] in failed ^ KNOWN_FAILURES]
    skipped = [r for r in rows.values() if r['status'] == 'skipped']
    assert all(r['reason'] for r in skipped)  # a skipped row says why
    assert rc == (1 if failed else 0)
    # speed: every model, fused and plain, in float32 and AMP (bfloat16 on CPU), inference and training
    speed = {(r['model'], r['variant'], r['precision'], r['mode']) for r in report['speed']}
    expected_speed = {(f, v, p, m) for f in dc.ATTENTION_FAMILIES for v in ('fused', 'plain')
                      for p in ('float32', 'bfloat16') for m in ('infer', 'train')}
    expected_speed |= {('resnet', 'plain', p, m) for p in ('float32', 'bfloat16') for m in ('infer', 'train')}
    assert speed == expected_speed
    for r in report['speed']:
        assert r['ms'] > 0 and r['vs_resnet'][1] <= r['vs_resnet'][0] <= r['vs_resnet'][2]
        assert ('fused_vs_plain' in r) == (r['variant'] == 'fused')
    text = (tmp_path / 'device_check.md').read_text()
    assert '| net epsanet | bfloat16 | channels_last |' in text and report['verdict']['text'] in text


@pytest.mark.parametrize('dtype,factor', [('float32', 1.001), ('bfloat16', 1.1)])
def test_comparison_fails_a_wrong_fused_form(dtype, factor, monkeypatch, one_thread):
    # a fused SE residual whose gate term is off by 0.1% (float32) or 10% (beyond bfloat16's rounding)
    def wrong(gate, x, identity, out_x):
        return identity + gate(x) * factor

    monkeypatch.setitem(FUSED_RESIDUALS, SEModule, wrong)
    subject = dc.layer_subject('se', (2, 128, 6, 6))
    rows = dc.check_subject(subject, torch.device('cpu'), {dtype: None}, dtypes=(dtype, ), layouts=('nchw', ))
    assert [r['mode'] for r in rows] == list(dc.MODES)
    assert [r['status'] for r in rows] == ['fail'] * len(rows)
    assert rows[-1]['group'] == 'outputs'


def test_a_fused_form_that_raises_is_reported_not_fatal(tmp_path, monkeypatch, one_thread):
    def broken(gate, x, identity, out_x):
        raise RuntimeError('no kernel for this device')

    monkeypatch.setitem(FUSED_RESIDUALS, SEModule, broken)
    rc = dc.main(['--device', 'cpu', '--preset', 'smoke', '--families', 'se', '--skip', 'layers',
                  '--out-dir', str(tmp_path)])
    report = json.loads((tmp_path / 'device_check.json').read_text())
    assert rc == 1 and len(report['correctness']) == len(dc.DTYPES) * len(dc.LAYOUTS) * len(dc.MODES)
    assert all(r['status'] == 'fail' and 'no kernel' in r['reason'] for r in report['correctness'])
    errors = [r for r in report['speed'] if 'error' in r]
    assert {(r['model'], r['variant']) for r in errors} == {('se', 'fused')}
    assert {r['model'] for r in report['speed'] if 'ms' in r} == {'resnet', 'se'}  # the others still timed
    assert not report['verdict']['fused_default_ok']


def test_time_budget_writes_partial_results(tmp_path):
    dc.main(['--device', 'cpu', '--preset', 'smoke', '--out-dir', str(tmp_path), '--time-budget', '0'])
    report = json.loads((tmp_path / 'device_check.json').read_text())
    assert not report['meta']['finished'] and not report['correctness'] and not report['speed']
    assert any('time budget' in s for s in report['skipped_sections'])
    assert not report['verdict']['fused_default_ok']
    assert 'unfinished' in (tmp_path / 'device_check.md').read_text()


def test_bad_arguments_say_what_is_valid(capsys):
    with pytest.raises(SystemExit):
        dc.parse_args(['--device', 'cpu', '--out-dir', 'x', '--families', 'se,bam'])
    assert "unknown ['bam']" in capsys.readouterr().err


# ------------------------------------------------------------------ mmattn.nets == the mmdet backbones
#: mmdet backbone type -> mmattn.nets family
BACKBONE_FAMILY = {'ResNet': 'resnet', 'SEResNet': 'se', 'ECAResNet': 'eca', 'SAResNet': 'sa',
                   'CBAMResNet': 'cbam', 'SGEResNet': 'sge', 'EPSANet': 'epsanet'}


def test_every_backbone_has_a_network():
    pytest.importorskip('mmdet')
    from mmattn.analysis.names import backbone_types
    assert set(backbone_types()) == set(BACKBONE_FAMILY) and set(BACKBONE_FAMILY.values()) == set(FAMILIES)


@pytest.mark.parametrize('btype', sorted(BACKBONE_FAMILY))
def test_network_loads_backbone_weights_and_matches_its_outputs(btype, one_thread):
    pytest.importorskip('mmdet')
    import mmattn.models  # noqa: F401  (registers the backbones)
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    backbone = MODELS.build(dict(type=btype, depth=50))
    with torch.no_grad():  # every tensor random, so that gates and BN statistics matter
        for t in backbone.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) * 0.5 + 0.75 if t.dim() == 1 else torch.randn_like(t) * 0.05)
    net = build_resnet(BACKBONE_FAMILY[btype], 50)
    net.load_state_dict(backbone.state_dict(), strict=True)
    backbone.eval()
    net.eval()
    x = torch.randn(1, 3, 64, 64)
    for fused_on in (False, True):
        with torch.no_grad(), fused(fused_on):
            expected, got = backbone(x), net(x)
        assert len(got) == len(expected) == 4
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def test_check_imports_with_torch_alone():
    # a GPU machine may have torch only: the check must not import mmcv, mmengine or mmdet
    code = ('import sys\n'
            "for name in ('mmcv', 'mmengine', 'mmdet'):\n"
            '    sys.modules[name] = None  # any import of them raises ImportError\n'
            'from mmattn.analysis.device_check import parse_args\n'
            "parse_args(['--device', 'cpu', '--out-dir', 'unused'])\n")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    assert result.returncode == 0, result.stderr
