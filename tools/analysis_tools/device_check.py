#!/usr/bin/env python
"""Check mmattn's fused paths against the plain formulas on a device, and their speed and memory.

Needs torch only (no mmcv/mmengine/mmdet). On a GPU machine, from the repository root::

    PYTHONPATH=. python tools/analysis_tools/device_check.py --device cuda --out-dir OUT [--quick]

The check itself is :mod:`mmattn.analysis.device_check` (see its docstring and docs/speed.md).
"""
from mmattn.analysis.device_check import main

if __name__ == '__main__':
    raise SystemExit(main())
