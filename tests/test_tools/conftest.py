"""Make the tool scripts importable as modules (they are scripts in tools/, not a package)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for sub in ('tools/model_converters', 'tools/analysis_tools'):
    path = os.path.join(ROOT, sub)
    if path not in sys.path:
        sys.path.insert(0, path)
