import warnings

import pytest

# Every test here but the toy data ones needs MMSegmentation (the `seg` extra), which the test
# environment of tools/bootstrap.py installs; without it they are not collected, and pytest says so.
collect_ignore_glob = []
try:
    import mmseg  # noqa: F401
except ModuleNotFoundError:
    collect_ignore_glob = ['test_seg_*.py', 'test_toy_seg_train.py']
    warnings.warn('tests/test_seg: MMSegmentation is not installed, so the segmentation tests are not '
                  'run; install the seg extra: pip install -r requirements/seg.txt')


@pytest.fixture
def mmseg_scope():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield
