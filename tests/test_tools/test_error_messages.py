"""Bad input makes tools/train.py and tools/test.py fail with a message that
names the file or config key and says what to do."""
import importlib.util
import os.path as osp
import shutil
import sys

import pytest
import torch
import tools_helpers
from tools_helpers import TOOLS_DIR, run_tool

# Fixtures shared by the tools tests.
toy_data = tools_helpers.toy_data
tiny_config = tools_helpers.tiny_config


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        f'mmattn_tools_{name}', osp.join(TOOLS_DIR, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tools_train():
    return _load_tool('train')


@pytest.fixture(scope='module')
def tools_test():
    return _load_tool('test')


def _error(tool, argv, monkeypatch, tmp_path):
    """Run ``tool.main()`` with ``argv`` and return its exit message."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', [tool.__file__] + argv)
    with pytest.raises(SystemExit) as excinfo:
        tool.main()
    message = str(excinfo.value.code)
    assert 'error:' in message
    return message


@pytest.fixture
def data_copy(toy_data, tmp_path):
    root = tmp_path / 'copy' / 'toy_coco'
    shutil.copytree(toy_data, root)
    return root


def test_missing_annotation_file(tools_train, tiny_config, toy_data,
                                 monkeypatch, tmp_path):
    msg = _error(tools_train, [
        tiny_config, '--cfg-options',
        'train_dataloader.dataset.ann_file=annotations/missing.json'
    ], monkeypatch, tmp_path)
    assert osp.join(toy_data, 'annotations/missing.json') in msg
    assert 'train_dataloader.dataset.ann_file' in msg
    assert 'does not exist' in msg
    assert 'make_toy_coco.py' in msg


def test_malformed_annotation_file(tools_train, tiny_config, data_copy,
                                   monkeypatch, tmp_path):
    ann = data_copy / 'annotations' / 'instances_train.json'
    ann.write_text(ann.read_text()[:100])  # truncated
    msg = _error(tools_train, [
        tiny_config, '--cfg-options',
        f'train_dataloader.dataset.data_root={data_copy}/'
    ], monkeypatch, tmp_path)
    assert str(ann) in msg
    assert 'not valid JSON' in msg
    assert '--force' in msg


def test_annotation_file_without_coco_fields(tools_train, tiny_config,
                                             data_copy, monkeypatch,
                                             tmp_path):
    ann = data_copy / 'annotations' / 'instances_train.json'
    ann.write_text('{"images": []}')
    msg = _error(tools_train, [
        tiny_config, '--cfg-options',
        f'train_dataloader.dataset.data_root={data_copy}/'
    ], monkeypatch, tmp_path)
    assert str(ann) in msg and '"annotations"' in msg


def test_missing_image(tools_train, tiny_config, data_copy, monkeypatch,
                       tmp_path):
    missing = data_copy / 'train' / '000002.png'
    missing.unlink()
    msg = _error(tools_train, [
        tiny_config, '--cfg-options',
        f'train_dataloader.dataset.data_root={data_copy}/'
    ], monkeypatch, tmp_path)
    assert '1 of 4 images' in msg
    assert str(missing) in msg


def test_unknown_backbone_type(tools_train, tiny_config, monkeypatch,
                               tmp_path):
    msg = _error(tools_train,
                 [tiny_config, '--cfg-options', 'model.backbone.type=SEResNt'],
                 monkeypatch, tmp_path)
    assert "'SEResNt'" in msg and 'model.backbone.type' in msg
    assert "Did you mean 'SEResNet'" in msg
    assert 'SAResNet' in msg  # lists the mmattn backbones
    assert 'custom_imports' in msg


def test_nonexistent_checkpoint(tools_test, tiny_config, monkeypatch,
                                tmp_path):
    missing = str(tmp_path / 'no' / 'epoch_9.pth')
    msg = _error(tools_test, [tiny_config, missing], monkeypatch, tmp_path)
    assert missing in msg and 'does not exist' in msg
    assert 'tools/train.py' in msg


def test_nonexistent_resume_and_load_from(tools_train, tiny_config,
                                          monkeypatch, tmp_path):
    missing = str(tmp_path / 'epoch_3.pth')
    msg = _error(tools_train, [tiny_config, '--resume', missing], monkeypatch,
                 tmp_path)
    assert missing in msg and '--resume' in msg
    msg = _error(tools_train,
                 [tiny_config, '--cfg-options', f'load_from={missing}'],
                 monkeypatch, tmp_path)
    assert missing in msg and 'load_from' in msg


def test_error_exit_status_from_command_line(tiny_config, tmp_path):
    missing = str(tmp_path / 'missing.pth')
    result = run_tool(['test.py', tiny_config, missing],
                      tmp_path,
                      check=False)
    assert result.returncode == 1
    assert missing in result.stderr and 'Traceback' not in result.stderr


def test_classes_not_in_annotation_file(tools_train, tiny_config,
                                        monkeypatch, tmp_path):
    msg = _error(tools_train, [
        tiny_config, '--cfg-options',
        'train_dataloader.dataset.metainfo.classes=[cat,dog]'
    ], monkeypatch, tmp_path)
    assert "('cat', 'dog')" in msg and 'circle' in msg
    assert 'train_dataloader.dataset.metainfo' in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason='AMP works on GPU')
def test_amp_without_gpu(tools_train, tiny_config, monkeypatch, tmp_path):
    msg = _error(tools_train, [tiny_config, '--amp'], monkeypatch, tmp_path)
    assert '--amp needs a CUDA GPU' in msg


def test_non_finite_loss_stops_training(tools_train, tiny_config, monkeypatch,
                                        tmp_path):
    work_dir = tmp_path / 'work'
    msg = _error(tools_train, [
        tiny_config, '--work-dir',
        str(work_dir), '--cfg-options',
        'model.rpn_head.loss_cls.loss_weight=nan'
    ], monkeypatch, tmp_path)
    assert 'Training stopped at iteration 1 (epoch 1): the loss is not ' \
        'finite (loss=nan, loss_rpn_cls=nan' in msg
    assert not (work_dir / 'epoch_1.pth').exists()


@pytest.mark.parametrize('damage', ['empty', 'truncated', 'random'])
def test_broken_resume_checkpoint_names_previous(tools_train, tiny_config,
                                                 monkeypatch, tmp_path,
                                                 damage):
    good = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, good)
    broken = tmp_path / 'epoch_2.pth'
    content = good.read_bytes()
    broken.write_bytes({
        'empty': b'',
        'truncated': content[:len(content) // 2],
        'random': bytes(range(256)) * 4
    }[damage])
    msg = _error(tools_train, [tiny_config, '--resume',
                               str(broken)], monkeypatch, tmp_path)
    expected = {
        'empty': 'is empty (0 bytes)',
        'truncated': 'is truncated or corrupt',
        'random': 'is not a PyTorch checkpoint'
    }[damage]
    assert f'{broken} (from --resume) {expected}' in msg
    assert f'--resume {good}' in msg
    # Auto-resume reads the file named in last_checkpoint.
    (tmp_path / 'last_checkpoint').write_text(str(broken))
    msg = _error(tools_train, [tiny_config, '--resume', '--work-dir',
                               str(tmp_path)], monkeypatch, tmp_path)
    assert str(broken) in msg and expected in msg


def test_missing_pretrained_names_imagenet_weights(tools_train, tiny_config,
                                                   monkeypatch, tmp_path):
    config = tmp_path / 'pretrained.py'
    config.write_text(
        f'_base_ = {tiny_config!r}\n'
        "model = dict(backbone=dict(init_cfg=dict(_delete_=True, "
        "type='Pretrained', checkpoint='no/se_r50.pth')))\n")
    msg = _error(tools_train, [str(config)], monkeypatch, tmp_path)
    assert 'ImageNet-pretrained backbone checkpoint no/se_r50.pth' in msg
    assert 'official2mmattn.py' in msg and 'init_cfg=None' in msg
    assert 'tools/train.py' not in msg


def test_other_configs_checkpoint_refused_by_test(tools_test, tiny_config,
                                                  monkeypatch, tmp_path):
    empty = tmp_path / 'empty.pth'
    torch.save({'state_dict': {}, 'meta': {}}, empty)
    msg = _error(tools_test, [tiny_config, str(empty)], monkeypatch, tmp_path)
    assert f'Checkpoint {empty} does not cover the model: 0 of' in msg
    assert '--allow-partial-checkpoint' in msg


def test_remote_checkpoint_coverage_checked_by_test(tools_test, tiny_config,
                                                    monkeypatch, tmp_path):
    """A URL checkpoint gets the same coverage check as a local file (the
    download is stubbed: it returns an empty state dict)."""
    url = 'https://example.com/other_model.pth'
    fetched = []

    def fake_download(address, **kwargs):
        fetched.append((address, kwargs.get('weights_only')))
        return {'state_dict': {}, 'meta': {}}

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', fake_download)
    msg = _error(tools_test, [tiny_config, url], monkeypatch, tmp_path)
    assert f'Checkpoint {url} does not cover the model: 0 of' in msg
    assert fetched == [(url, True)]
