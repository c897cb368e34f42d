"""Files that are not checkpoints are called what they are; only a refused pickle suggests
``--trust-source``."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmattn.utils import CheckpointLoadError, load_checkpoint_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _files(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, good)
    content = good.read_bytes()
    files = {
        'empty': (b'', 'is empty (0 bytes)'),
        'truncated': (content[:len(content) // 2], 'is truncated or corrupt'),
        'random': (bytes(range(7, 256)) * 8, 'is not a PyTorch checkpoint'),
        'text': (b'{"state_dict": {}}\n', 'is not a PyTorch checkpoint'),
    }
    paths = {}
    for name, (data, expected) in files.items():
        path = tmp_path / f'{name}.pth'
        path.write_bytes(data)
        paths[name] = (str(path), expected)
    return paths


KINDS = ('empty', 'truncated', 'random', 'text')


@pytest.mark.parametrize('kind', KINDS)
def test_loader_names_the_problem(kind, tmp_path):
    path, expected = _files(tmp_path)[kind]
    with pytest.raises(CheckpointLoadError) as err:
        load_checkpoint_file(path)
    assert f'Checkpoint {path} {expected}' in str(err.value)


@pytest.mark.parametrize('script', ['official2mmattn.py', 'publish_model.py'])
def test_converters_name_the_problem_without_trust_source_hint(script, tmp_path):
    for kind, (path, expected) in _files(tmp_path).items():
        result = subprocess.run(
            [sys.executable, osp.join(REPO, 'tools', 'model_converters', script), path,
             str(tmp_path / 'out.pth')], capture_output=True, text=True, cwd=str(tmp_path))
        assert result.returncode != 0, kind
        assert expected in result.stderr, (kind, result.stderr)
        assert '--trust-source' not in result.stderr, kind
