import os
import sys

# tests/reference.py (the spec's reference formulas) is imported by tests in sub-folders
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
