"""Checks that :func:`torch.compile` can generate code on a device, run before compiling so that
a missing tool fails early with the fix instead of deep inside the first compiled call.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sysconfig
from pathlib import Path

import torch

__all__ = ["check_compiler"]


def check_compiler(device: torch.device) -> None:
    """Fail early, with the fix, when :func:`torch.compile` could not generate code here.

    Args:
        device: where the compiled model will run.

    Raises:
        RuntimeError: on a CPU, no C++ compiler (``$CXX``, g++, c++ or clang++) or no
            ``Python.h``; on a CUDA device, no Triton. The message names what to install.
    """
    if device.type == "cpu":
        cxx = os.environ.get("CXX") or next(
            (c for c in ("g++", "c++", "clang++") if shutil.which(c)), None
        )
        if cxx is None or shutil.which(cxx) is None:
            raise RuntimeError(
                "torch.compile on a CPU needs a C++ compiler (TorchInductor generates C++): "
                "install g++ (e.g. apt-get install g++) or run without compiling"
            )
        if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
            raise RuntimeError(
                "torch.compile on a CPU needs Python's development headers (Python.h): install "
                "them (e.g. apt-get install python3-dev) or run without compiling"
            )
    elif device.type == "cuda" and importlib.util.find_spec("triton") is None:
        raise RuntimeError(
            "torch.compile on a GPU needs Triton: pip install triton (it comes with PyTorch's "
            "CUDA wheels) or run without compiling"
        )
