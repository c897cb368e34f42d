from tools_helpers import load_tool

from mmattn.analysis import backbone_types
from mmattn.analysis.names import backbone_label
from mmattn.analysis.summary import format_table, summarize_backbones


def test_backbone_list_comes_from_the_registry():
    names = backbone_types()
    assert names[0] == 'ResNet'  # mmdet's own ResNet, the reference
    assert set(names[1:]) >= {'SEResNet', 'ECAResNet', 'SAResNet', 'CBAMResNet', 'SGEResNet', 'EPSANet'}
    assert 'AttentionResNet' not in names  # generic: needs an attention config


def test_summary_rows_and_table():
    rows = summarize_backbones(['ResNet', 'SEResNet', 'NoSuchNet'], depth=50, input_size=32)
    resnet, se, missing = rows
    assert resnet['error'] is None and se['error'] is None
    assert se['out_shapes'] == [[256, 8, 8], [512, 4, 4], [1024, 2, 2], [2048, 1, 1]]
    assert se['params'] > resnet['params'] > 20e6
    assert 'NoSuchNet' in missing['error']
    table = format_table(rows, 32)
    assert 'SE-ResNet' in table and '256x8x8' in table and f'{se["params"] / 1e6:.2f}' in table


def test_cli_builds_a_named_backbone(capsys):
    assert load_tool('analysis_tools/backbone_summary.py').main(['--backbones', 'SAResNet', '--depth', '101']) == 0
    assert 'SA-ResNet  101' in capsys.readouterr().out


def test_cli_all_means_every_registered_backbone(capsys):
    """``--backbones all``, as in get_flops.py and benchmark.py, not a registry type named 'all'."""
    tool = load_tool('analysis_tools/backbone_summary.py')
    assert tool.main(['--backbones', 'all', '--no-reference']) == 0
    out = capsys.readouterr().out
    labels = [line.split()[0] for line in out.splitlines()[2:] if line.strip()]
    assert labels == [backbone_label(name) for name in backbone_types(with_reference=False)]
