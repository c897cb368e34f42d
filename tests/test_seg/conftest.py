import pytest

# Every test here but the toy data ones needs MMSegmentation (the `seg` extra: pip install mmattn[seg]).
collect_ignore_glob = []
try:
    import mmseg  # noqa: F401
except ModuleNotFoundError:
    collect_ignore_glob = ['test_seg_*.py']


@pytest.fixture
def mmseg_scope():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield
