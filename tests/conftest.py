import os
import sys

# tests/reference.py (the spec's reference formulas) is imported by tests in sub-folders
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402


@pytest.fixture(params=['one-chunk', 'row-chunks'])
def chunking(request, monkeypatch):
    """Run a backward test twice: with the chunks of ``helpers.chunk_slices`` as they are (the tests'
    maps fit in one) and with one row per chunk (CHUNK_BYTES = 1), as on real feature maps."""
    if request.param == 'row-chunks':
        from mmattn.fused import kernels as helpers
        monkeypatch.setattr(helpers, 'CHUNK_BYTES', 1)
    return request.param
