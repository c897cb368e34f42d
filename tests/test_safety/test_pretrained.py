"""A Pretrained checkpoint that does not cover the backbone fails before training, with a summary."""
import pytest
import torch

import mmattn.models  # noqa: F401  registers the backbones
from mmattn.utils.pretrained import PartialCheckpointError
from mmdet.registry import MODELS

TINY = dict(depth=50, base_channels=8, num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(0, 1))


def _backbone(type_, checkpoint=None, init=None, **kwargs):
    init_cfg = None if checkpoint is None else \
        dict(type='Pretrained', checkpoint=str(checkpoint), **(init or {}))
    return MODELS.build(dict(TINY, type=type_, init_cfg=init_cfg, **kwargs))


def _save(model, path, prefix=''):
    torch.save({'state_dict': {prefix + k: v for k, v in model.state_dict().items()}}, path)
    return path


def test_same_architecture_loads(tmp_path):
    src = _backbone('SEResNet')
    torch.nn.init.normal_(src.conv1.weight)
    ckpt = _save(src, tmp_path / 'se.pth', prefix='backbone.')
    dst = _backbone('SEResNet', ckpt, init=dict(prefix='backbone.'))
    dst.init_weights()
    assert torch.equal(dst.conv1.weight, src.conv1.weight)


def test_other_architecture_refused(tmp_path):
    ckpt = _save(_backbone('SEResNet'), tmp_path / 'se.pth')
    dst = _backbone('SAResNet', ckpt, groups=4)
    with pytest.raises(PartialCheckpointError) as err:
        dst.init_weights()
    msg = str(err.value)
    assert str(ckpt) in msg and 'tensors of the model match' in msg
    assert 'another architecture' in msg and 'sa' in msg and 'se' in msg
    assert 'allow_partial=True' in msg


def test_other_width_refused_and_partial_opt_in(tmp_path):
    src = _backbone('SEResNet')
    ckpt = _save(src, tmp_path / 'se.pth')
    wide = dict(TINY, base_channels=16)
    dst = MODELS.build(dict(wide, type='SEResNet', init_cfg=dict(type='Pretrained', checkpoint=str(ckpt))))
    expected = r'another width or depth \(first mismatch: conv1.weight'
    with pytest.raises(PartialCheckpointError, match=expected):
        dst.init_weights()
    # Explicit opt-in: mmengine's partial load (nothing of matching shape is left out).
    dst = MODELS.build(dict(wide, type='SEResNet',
                            init_cfg=dict(type='Pretrained', checkpoint=str(ckpt), allow_partial=True)))
    dst.init_weights()


def test_detector_checkpoint_without_prefix_and_empty_state_dict(tmp_path):
    ckpt = _save(_backbone('SEResNet'), tmp_path / 'det.pth', prefix='backbone.')
    with pytest.raises(PartialCheckpointError, match="prefix='backbone.'"):
        _backbone('SEResNet', ckpt).init_weights()
    empty = tmp_path / 'empty.pth'
    torch.save({'state_dict': {}}, empty)
    with pytest.raises(PartialCheckpointError, match='0 of .* match.*holds no tensors'):
        _backbone('SEResNet', empty).init_weights()
