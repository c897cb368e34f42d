import importlib.util
import os.path as osp

import pytest
from tools_helpers import TOOLS_DIR


@pytest.fixture(scope='module')
def summary():
    path = osp.join(TOOLS_DIR, 'analysis_tools', 'backbone_summary.py')
    spec = importlib.util.spec_from_file_location('backbone_summary', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lists_every_mmattn_backbone(summary):
    names = summary.list_backbones()
    for name in ('SEResNet', 'ECAResNet', 'SAResNet', 'CBAMResNet',
                 'SGEResNet', 'AttentionResNet', 'EPSANet'):
        assert name in names
    assert 'ResNet' not in names  # mmdet's own ResNet is only the reference


def test_summary_rows_and_table(summary):
    rows = summary.summarize_backbones(['ResNet', 'SEResNet', 'NoSuchNet'],
                                       depth=50,
                                       input_size=32)
    resnet, se, missing = rows
    assert resnet['error'] is None and se['error'] is None
    assert se['out_shapes'] == [[256, 8, 8], [512, 4, 4], [1024, 2, 2],
                                [2048, 1, 1]]
    assert se['params'] > resnet['params'] > 20e6
    assert 'NoSuchNet' in missing['error']
    table = summary.format_table(rows, 32)
    assert 'SEResNet' in table and '256x8x8' in table
    assert f'{se["params"] / 1e6:.2f}' in table
