"""Model loading and machine description shared by the benchmark scripts."""

from __future__ import annotations

import platform
import warnings

import torch


def load(name: str, fallback: str):
    """Load ``name``; if it is unavailable, warn and load ``fallback`` (a model name, checkpoint
    path or random-weight config name; ``random:<config>`` builds any config, e.g.
    ``random:micro`` for the bundled model's architecture)."""
    from napari_sam2 import SAM2Model, load_model
    from napari_sam2.model.config import get_config

    def get(n: str):
        torch.manual_seed(0)  # random-weight models are reproducible
        if n.startswith("random:"):
            return SAM2Model(get_config(n.split(":", 1)[1])).eval()
        return load_model(n)

    try:
        return get(name), name
    except (FileNotFoundError, OSError, ValueError, KeyError) as err:
        warnings.warn(f"model {name!r} unavailable ({err}); using {fallback!r}", stacklevel=2)
        return get(fallback), fallback


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name plus the vector / matrix units that change PyTorch's CPU speed a lot
    (e.g. ``"Intel(R) Xeon(R) Processor (AVX-512, AMX)"``): timings differ 2x between CPUs.
    Without ``cpuinfo`` (not Linux), Python's own description of the processor."""
    name, flags = "", set()
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if line.startswith("model name") and not name:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                if name and flags:
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    units = [u for u in (vector, "AMX" if "amx_bf16" in flags else None) if u]
    return f"{name} ({', '.join(units)})" if units else name


def cpu_eval_model(args):
    """The model of an accuracy script, on the CPU with ``args.threads`` threads; an empty
    ``args.looks`` (``--looks`` given without names) becomes every look family."""
    from napari_sam2 import load_model

    if getattr(args, "looks", None) == []:
        from napari_sam2.train.looks import FAMILIES

        args.looks = list(FAMILIES)
    torch.set_num_threads(args.threads)
    return load_model(args.model, device="cpu")
