"""A corrupt scalars.json is reported as corrupt, not as a run without evaluation results."""
import json
import os

import pytest

from mmattn.analysis.work_dirs import collect, json_lines_problem


def _work_dir(root, content: bytes):
    vis = root / 'faster-rcnn_x' / '20240101_120000' / 'vis_data'
    os.makedirs(vis)
    (root / 'faster-rcnn_x' / 'faster-rcnn_x.py').write_text("model = dict(type='FasterRCNN')\n")
    (vis / 'scalars.json').write_bytes(content)
    return vis / 'scalars.json'


GOOD = json.dumps({'coco/bbox_mAP': 0.3, 'step': 1}).encode() + b'\n'


@pytest.mark.parametrize('content, expected', [
    (bytes(range(128, 256)) * 4, 'is corrupt: not UTF-8 text'),
    (b'{"loss": 1.0, "st\n{"loss": 2\n' + GOOD, 'is corrupt: 2 of 3 lines are not JSON (first: line 1)'),
])
def test_corrupt_log_is_named(tmp_path, capsys, content, expected):
    path = _work_dir(tmp_path, content)
    assert expected in json_lines_problem(str(path))
    collect([str(tmp_path)])
    err = capsys.readouterr().err
    assert f'{path} {expected}' in err
    assert 'no evaluation results' not in err


def test_cut_off_last_line_is_not_corruption(tmp_path):
    path = _work_dir(tmp_path, GOOD + b'{"coco/bbox_mAP": 0.9')
    assert json_lines_problem(str(path)) is None
