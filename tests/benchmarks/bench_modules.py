"""Import a script of ``benchmarks/`` (or its helper modules) as a module in a test."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def import_benchmark(name: str) -> ModuleType:
    """The module ``benchmarks/<name>.py``, imported with ``benchmarks/`` on ``sys.path`` only
    while it loads."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
