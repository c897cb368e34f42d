"""benchmark.py smoke test: it runs (1 round, tiny input) and its table/ratios are consistent.

Not a timing test: only structure and arithmetic are checked.
"""
import json
import os.path as osp

import pytest
import torch
from tools_helpers import load_tool

from mmattn.analysis import benchmark as core

cli = load_tool('analysis_tools/benchmark.py')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_parse_size():
    assert core.parse_size('224') == (224, 224)
    assert core.parse_size('800x1333') == (800, 1333)
    with pytest.raises(Exception):
        core.parse_size('1x2x3')


def test_backbones_smoke(tmp_path, capsys):
    out_json = tmp_path / 'b.json'
    rc = cli.main(['--backbones', 'ECAResNet', '--depth', '50', '--batch', '1', '--size', '64', '--repeats',
                         '2', '--iters', '1', '--warmup', '0', '--threads', '1', '--no-memory', '--json',
                         str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    data = json.loads(out_json.read_text())['records']
    # the plain ResNet of the same depth is added and measured in the same run, for both modes
    assert sorted((r['name'], r['mode']) for r in data) == sorted(
        (n, m) for n in ('ResNet-50', 'ECAResNet-50') for m in ('infer', 'train'))
    for r in data:
        assert len(r['all_seconds']) == 2 and all(s > 0 for s in r['all_seconds'])
        assert r['throughput'] == pytest.approx(1 / r['seconds_per_iter'])  # batch 1
    eca = next(r for r in data if r['name'] == 'ECAResNet-50' and r['mode'] == 'infer')
    base = next(r for r in data if r['name'] == 'ResNet-50' and r['mode'] == 'infer')
    row = next(line for line in text.splitlines() if line.startswith('| ECAResNet-50 | infer'))
    # speed ratio: median of the per-round ratios (baseline time / model time), then their range
    rounds = [b / t for b, t in zip(base['all_seconds'], eca['all_seconds'])]
    assert f'| {(rounds[0] + rounds[1]) / 2:.3f} ({min(rounds):.2f}–{max(rounds):.2f}) |' in row
    assert 'threads 1' in text


def test_detector_training_smoke(capsys):
    """A detector config: real losses on a synthetic batch, forward + backward + SGD step."""
    cfg = osp.join(ROOT, 'configs/resnet/faster-rcnn_r50_fpn_1x_coco.py')
    rc = cli.main(['--configs', cfg, '--batch', '1', '--size', '96x128', '--repeats', '1', '--iters', '1',
                         '--warmup', '1', '--threads', '1', '--mode', 'train', '--no-memory'])
    assert rc == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith('| faster-rcnn_r50'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[1] == 'train' and cells[2].endswith('it/s')
    assert cells[4] == '1.000 (1.00–1.00)'  # its own baseline (the plain-ResNet detector)


def test_cpu_peak_memory_in_a_fresh_process():
    args = cli.parse_args(['--batch', '1', '--size', '64', '--threads', '1'])
    infer = core.cpu_peak_memory('backbone', 'ResNet-50', args, 'infer')
    # at least the backbone's 23.5 M float32 weights (89.7 MiB), plus a little activation memory
    assert 89.7 * 2**20 < infer < 1000 * 2**20


def test_compare_channels_last(tmp_path, capsys):
    """Each model twice (NCHW and channels-last) in the same rounds: ratios vs the ResNet of the same
    layout, and the channels-last twin's speed relative to its NCHW self in the last column."""
    out_json = tmp_path / 'b.json'
    rc = cli.main(['--backbones', 'SAResNet', '--depth', '50', '--batch', '1', '--size', '64', '--repeats',
                         '2', '--iters', '1', '--warmup', '0', '--threads', '1', '--no-memory', '--mode', 'infer',
                         '--compare-channels-last', '--json', str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    data = {r['name']: r for r in json.loads(out_json.read_text())['records']}
    assert sorted(data) == ['ResNet-50', 'ResNet-50 (NHWC)', 'SAResNet-50', 'SAResNet-50 (NHWC)']
    assert [data[n]['channels_last'] for n in sorted(data)] == [False, True, False, True]
    lines = text.splitlines()
    assert lines[2].endswith('| mem ratio | NHWC vs NCHW |') and 'NCHW and channels-last (NHWC)' in lines[0]

    def cells(name):
        row = next(line for line in lines if line.startswith(f'| {name} | infer'))
        return [c.strip() for c in row.strip('|').split('|')]

    def paired(base, rec):
        rounds = [b / t for b, t in zip(data[base]['all_seconds'], data[rec]['all_seconds'])]
        return f'{sum(rounds) / 2:.3f} ({min(rounds):.2f}–{max(rounds):.2f})'

    assert cells('SAResNet-50 (NHWC)')[4] == paired('ResNet-50 (NHWC)', 'SAResNet-50 (NHWC)')
    assert cells('SAResNet-50')[4] == paired('ResNet-50', 'SAResNet-50')
    assert cells('SAResNet-50 (NHWC)')[-1] == paired('SAResNet-50', 'SAResNet-50 (NHWC)')
    assert cells('SAResNet-50')[-1] == '–' and cells('ResNet-50 (NHWC)')[-1] == paired('ResNet-50',
                                                                                       'ResNet-50 (NHWC)')


def test_channels_last_subject_holds_weights_and_input_in_nhwc():
    args = cli.parse_args(['--backbones', 'CBAMResNet', '--batch', '1', '--size', '32',
                                 '--compare-channels-last'])
    nhwc = core.Subject('backbone', 'CBAMResNet-18', args, channels_last=True).build()
    nchw = core.Subject('backbone', 'CBAMResNet-18', args, channels_last=False).build()
    assert nhwc.name == 'CBAMResNet-18 (NHWC)' and nchw.name == 'CBAMResNet-18'
    assert nhwc.image.is_contiguous(memory_format=torch.channels_last) and nchw.image.is_contiguous()
    assert nhwc.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not nchw.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    # the output is the same computation in either layout
    torch.testing.assert_close(nhwc.infer_step()[-1], nchw.infer_step()[-1], rtol=1e-4, atol=1e-4)
    with pytest.raises(SystemExit):
        cli.parse_args(['--backbones', 'SEResNet', '--channels-last', '--compare-channels-last'])
