"""Wrong backbone and layer arguments fail with a message naming the argument and the valid values."""
import pytest

import mmattn.models  # noqa: F401  registers the backbones
from mmattn.layers.checks import check_groups, valid_groups
from mmdet.registry import MODELS


def _build(**kwargs):
    return MODELS.build(dict(dict(type='SEResNet', depth=50, base_channels=8), **kwargs))


@pytest.mark.parametrize('kwargs, expected', [
    (dict(out_indices=(4, )), r'out_indices=\(4,\) is invalid: .* 0\.\.3 .*got \[4\]'),
    (dict(out_indices=(0, 3), num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1)), r'got \[3\]'),
    (dict(frozen_stages=5), r'frozen_stages=5 must be -1 .* 1\.\.4'),
    (dict(num_stages=3, out_indices=(0, 1, 2)), r'strides=\(1, 2, 2, 2\) has 4 entries but num_stages=3'),
    (dict(num_stages=5), r'num_stages=5 must be 1, 2, 3 or 4'),
])
def test_stage_arguments(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        _build(**kwargs)


def test_valid_stage_arguments_build():
    model = _build(num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(0, 2), frozen_stages=3)
    model.train()
    assert not any(p.requires_grad for p in model.layer3.parameters())


def test_groups_hint_lists_valid_groups():
    assert valid_groups(32, parts=2) == [1, 2, 4, 8, 16]
    with pytest.raises(ValueError) as err:
        check_groups(32, 64, 'ShuffleAttention', parts=2)
    msg = str(err.value)
    assert 'groups=64 does not fit in_channels=32' in msg
    assert 'Valid groups for in_channels=32: 1, 2, 4, 8, 16 (nearest: groups=16)' in msg
    check_groups(64, 16, 'ShuffleAttention', parts=2)
