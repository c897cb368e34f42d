"""Crafted checkpoints are refused by every loading path, and none runs its payload.

The paths: mmattn's loader (tools/test.py's checkpoint, the converters), mmengine's loader inside the
tools (``--resume``, ``load_from``, ``init_cfg=Pretrained``), tools/test.py, and the converter scripts
official2mmattn.py and publish_model.py without ``--trust-source``.
"""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import torch
from crafted import StatisticsRedirect, attribute_walk, payloads, touch_code, write
from mmengine.logging.history_buffer import HistoryBuffer

from mmattn.utils import CheckpointLoadError, load_checkpoint_file, mmengine_checkpoint_globals

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.append(osp.join(REPO, 'tests', 'test_tools'))
import tools_helpers  # noqa: E402

toy_data = tools_helpers.toy_data
tiny_config = tools_helpers.tiny_config

PLACES = ('meta', 'message_hub', 'optimizer')


@pytest.mark.parametrize('where', PLACES)
@pytest.mark.parametrize('name', sorted(payloads('x')))
def test_loader_refuses(name, where, tmp_path):
    marker = tmp_path / 'ran'
    path = write(tmp_path / 'crafted.pth', payloads(str(marker))[name], where)
    with pytest.raises(CheckpointLoadError, match='refused by the weights-only loader') as excinfo:
        load_checkpoint_file(path)
    # the reason, not torch's advice to retry with weights_only=False
    assert 'will likely succeed' not in str(excinfo.value) and 'load failed' not in str(excinfo.value)
    # mmengine's own torch.load call inside the tools' scope.
    with mmengine_checkpoint_globals(), pytest.raises(Exception):
        torch.load(path, map_location='cpu')
    assert not marker.exists()


def test_attribute_walk_would_run_with_getattr_allow_listed(tmp_path):
    """The gadget is real: with ``builtins.getattr`` allow-listed (mmattn's old list) it runs."""
    marker = tmp_path / 'ran'
    path = write(tmp_path / 'crafted.pth', attribute_walk(touch_code(str(marker))))
    code = ('import sys, torch\n'
            'from mmengine.logging.history_buffer import HistoryBuffer\n'
            'with torch.serialization.safe_globals([getattr, HistoryBuffer]):\n'
            '    try:\n'
            '        torch.load(sys.argv[1])\n'
            '    except Exception:\n'
            '        pass\n')
    subprocess.run([sys.executable, '-c', code, path], check=True, capture_output=True)
    assert marker.exists()


def test_statistics_table_is_restored(tmp_path):
    path = write(tmp_path / 'redirect.pth', StatisticsRedirect(), 'message_hub')
    load_checkpoint_file(path)
    assert HistoryBuffer._statistics_methods['min'] is HistoryBuffer.min
    assert HistoryBuffer([3., 1.], [1, 1]).statistics('min') == 1.


def test_buffer_of_its_own_statistics_table_is_dropped(tmp_path):
    """A pickled buffer state holding '_statistics_methods' would give that buffer its own table (which
    mmengine's logging calls after loading, outside the allow-list's scope): dropped on load."""
    from torch._tensor import _rebuild_from_type_v2
    planted = HistoryBuffer([3., 1.], [1, 1])
    vars(planted)['_statistics_methods'] = {'min': _rebuild_from_type_v2}
    path = write(tmp_path / 'planted.pth', planted, 'message_hub')
    loaded = load_checkpoint_file(path)['message_hub']['log_scalars']['train/loss']
    assert '_statistics_methods' not in vars(loaded)
    assert loaded.statistics('min') == 1.
    assert HistoryBuffer._statistics_methods['min'] is HistoryBuffer.min


def _load_tool(name):
    path = osp.join(REPO, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'mmattn_tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tools():
    return {name: _load_tool(name) for name in ('train', 'test')}


def _exit_message(tool, argv, monkeypatch, cwd):
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, 'argv', [tool.__file__] + argv)
    with pytest.raises(SystemExit) as excinfo:
        tool.main()
    return str(excinfo.value.code)


@pytest.mark.parametrize('path_kind', ['resume', 'load_from', 'pretrained', 'test', 'test_partial'])
def test_tools_refuse(path_kind, tools, tiny_config, monkeypatch, tmp_path):
    marker = tmp_path / 'ran'
    ckpt = write(tmp_path / 'crafted.pth', attribute_walk(touch_code(str(marker))), 'message_hub')
    work = ['--work-dir', str(tmp_path / 'work')]
    if path_kind == 'resume':
        argv = [tiny_config, '--resume', ckpt] + work
    elif path_kind == 'load_from':
        argv = [tiny_config, '--cfg-options', f'load_from={ckpt}'] + work
    elif path_kind == 'pretrained':
        config = tmp_path / 'pretrained.py'
        config.write_text(f'_base_ = {tiny_config!r}\n'
                          'model = dict(backbone=dict(init_cfg=dict(\n'
                          f"    _delete_=True, type='Pretrained', checkpoint={ckpt!r})))\n")
        argv = [str(config)] + work
    else:
        argv = [tiny_config, ckpt] + work
        if path_kind == 'test_partial':
            argv.append('--allow-partial-checkpoint')
    tool = tools['test' if path_kind.startswith('test') else 'train']
    msg = _exit_message(tool, argv, monkeypatch, tmp_path)
    assert 'refused by the weights-only loader' in msg and ckpt in msg, msg
    assert not marker.exists()


@pytest.mark.parametrize('script', ['official2mmattn.py', 'publish_model.py'])
def test_converters_refuse(script, tmp_path):
    marker = tmp_path / 'ran'
    ckpt = write(tmp_path / 'crafted.pth', attribute_walk(touch_code(str(marker))), 'meta')
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'model_converters', script), ckpt,
         str(tmp_path / 'out.pth')],
        capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode != 0
    assert 'refused by the weights-only loader' in result.stderr
    assert '--trust-source' in result.stderr
    assert not marker.exists()


@pytest.fixture
def http_dir(tmp_path, monkeypatch):
    """(folder, base URL) of a local HTTP server; torch.hub's download cache in tmp_path."""
    import functools
    import http.server
    import threading
    folder = tmp_path / 'served'
    folder.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f'http://127.0.0.1:{server.server_port}/'
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize('path_kind', ['pretrained', 'pretrained_partial', 'mmengine_loader'])
def test_downloads_refuse(path_kind, http_dir, tmp_path):
    """http(s) checkpoints (also behind open-mmlab://, torchvision://): mmengine downloads them with
    torch.hub, which unpickles with weights_only=False by default."""
    from mmdet.registry import MODELS
    from mmengine.runner.checkpoint import CheckpointLoader

    import mmattn.models  # noqa: F401
    from mmattn.utils import safe_checkpoint_loading
    folder, base = http_dir
    marker = tmp_path / 'ran'
    write(folder / 'crafted.pth', payloads(str(marker))['os_system'], 'meta')
    url = base + 'crafted.pth'
    with pytest.raises(CheckpointLoadError, match='refused by the weights-only loader'):
        if path_kind == 'mmengine_loader':
            with safe_checkpoint_loading():
                CheckpointLoader.load_checkpoint(url, map_location='cpu')
        else:
            init_cfg = dict(type='Pretrained', checkpoint=url, allow_partial=path_kind == 'pretrained_partial')
            MODELS.build(dict(type='SEResNet', depth=18,
                              init_cfg=init_cfg)).init_weights()
    assert not marker.exists()


def test_download_of_an_mmengine_checkpoint_loads(http_dir):
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmattn.utils import safe_checkpoint_loading
    folder, base = http_dir
    ckpt = {'state_dict': {'w': torch.arange(3.)},
            'message_hub': {'log_scalars': {'loss': HistoryBuffer([1., 2.], [1, 1])}}}
    torch.save(ckpt, str(folder / 'good.pth'))
    with safe_checkpoint_loading():
        loaded = CheckpointLoader.load_checkpoint(base + 'good.pth', map_location='cpu')
    assert torch.equal(loaded['state_dict']['w'], ckpt['state_dict']['w'])
    assert loaded['message_hub']['log_scalars']['loss'].statistics('mean') == 1.5
