"""backbone_summary.py --backbones finds the mmattn backbones in a fresh process (the registry is
filled whether or not backbones are named)."""
import os.path as osp
import subprocess
import sys

TOOL = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools', 'analysis_tools',
                'backbone_summary.py')


def test_named_backbone_is_registered(tmp_path):
    result = subprocess.run(
        [sys.executable, TOOL, '--backbones', 'SAResNet', '--input-size', '32', '--no-reference'],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'not in the registry' not in result.stdout + result.stderr
    assert '256x8x8' in result.stdout
