"""The model part of the tracking controller (``controller.model``): the model picker's
choices, loading (and downloading) a model, the device, the precision and the memory-bank
settings. Loading and moving run as jobs; prompts given so far are re-run on the new model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._sessions import SessionKeeper
from ._state import TrackingState
from .jobs import Job

__all__ = [
    "BUNDLED",
    "DEVICES",
    "LOAD_FROM_FILE",
    "PRECISIONS",
    "ModelControl",
    "bundled_model_installed",
    "model_choices",
]

BUNDLED = "micro"
LOAD_FROM_FILE = "load from file..."
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16")


def bundled_model_installed() -> bool:
    """Whether the bundled micro checkpoint exists (checked without importing torch)."""
    from ..weights.registry import bundled_checkpoint_path

    return bundled_checkpoint_path().is_file()


def model_choices() -> list[dict[str, Any]]:
    """Models offered by the picker: the bundled one, then the official checkpoints.

    Returns:
        dicts with ``name``, ``label`` (shown text), ``ready`` (usable without a download)
        and ``description``.
    """
    from napari_sam2.weights.download import is_cached
    from napari_sam2.weights.registry import REGISTRY

    micro = bundled_model_installed()
    out = [
        {
            "name": BUNDLED,
            "label": "micro (bundled)" if micro else "micro (not installed)",
            "ready": micro,
            "description": "small model trained on synthetic microscopy, ships with the plugin",
        }
    ]
    for name, info in REGISTRY.items():
        cached = is_cached(name)
        mb = f"~{info.size_bytes / 1e6:.0f} MB" if info.size_bytes else "download"
        out.append(
            {
                "name": name,
                "label": f"{name} ({'cached' if cached else mb + ' download'})",
                "ready": cached,
                "description": info.description,
            }
        )
    return out


def _default_choice() -> str | None:
    for c in model_choices():
        if c["ready"]:
            return c["name"]
    return None


class ModelControl:
    """Which model runs, where, in which precision, with which memory settings.

    Args:
        state: the controller's shared :class:`~napari_sam2._napari._state.TrackingState`.
        sessions: rebuilds the session (prompts re-run) when the model changes.

    Attributes:
        loaded: the loaded :class:`~napari_sam2.model.sam2.SAM2Model`, or None.
        name: its name ("micro", an official name, a checkpoint's stem or "custom").
        choice: the model the picker offers to load (a name or a checkpoint path).
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        precision: "fp32" or "bf16".
    """

    def __init__(self, state: TrackingState, sessions: SessionKeeper) -> None:
        self._state = state
        self._sessions = sessions
        self.loaded: Any = None
        self.name: str | None = None
        self.choice: str | None = _default_choice()
        self.device = "auto"
        self.precision = "fp32"
        self._settings: Any = None  # MemorySettings, created on first use (imports torch)

    # ------------------------------------------------------------------ memory settings
    @property
    def settings(self) -> Any:
        """The :class:`~napari_sam2.video.memory_bank.MemorySettings` for the next job."""
        if self._settings is None:
            from napari_sam2.video.memory_bank import MemorySettings

            self._settings = MemorySettings()
        return self._settings

    def update_settings(self, **changes: Any) -> None:
        """Change :class:`~napari_sam2.video.memory_bank.MemorySettings` fields (checked
        against the loaded model); they reach the session before the next prompt or
        propagation.

        Raises:
            ValueError: a value out of range (the settings are unchanged).
        """
        new = self.settings.replace(**changes)
        if self.loaded is not None:
            cfg = self.loaded.config
            new.validate(cfg.num_maskmem, cfg.max_obj_ptrs_in_encoder)
        else:
            new.validate()
        self._settings = new
        self._state.events.settings_changed.emit()

    def set_memory_setting(self, name: str, value: Any) -> None:
        """Change one memory setting (see :meth:`update_settings`)."""
        self.update_settings(**{name: value})

    # ------------------------------------------------------------------ model
    @property
    def description(self) -> str:
        """The model part of the status line."""
        if self.loaded is None:
            if not bundled_model_installed() and self.choice in (None, BUNDLED):
                return (
                    "No model loaded: the bundled 'micro' model is not installed yet. "
                    "Pick an official model (downloaded once) or load a file."
                )
            return "No model loaded"
        dev = str(self.loaded.device)
        return f"Model: {self.name} on {dev} ({self.precision})"

    def choose(self, name: str) -> None:
        """Offer ``name`` (a model name or checkpoint path) for loading, without loading it
        (the next prompt loads it when it needs no download)."""
        self.choice = name
        self._state.report()

    def set_model(
        self, model_or_name: Any, *, device: str | None = None, wait: bool = False
    ) -> Any:
        """Use a model: a loaded :class:`~napari_sam2.model.sam2.SAM2Model`, a name accepted by
        :func:`napari_sam2.load_model` ("micro", official names, test config names) or a
        checkpoint path. Official checkpoints are downloaded first (progress bar, cancellable).

        The prompts given so far are re-run with the new model; labels are kept.

        Returns:
            The model (given a model), else the loading job (with ``wait=True`` once done).

        Raises:
            FileNotFoundError: "micro" is asked for but not installed.
            ValueError: an unknown device.
        """
        if device is not None:
            _check_device(device)
            self.device = device
        if not isinstance(model_or_name, (str, os.PathLike)):
            name = getattr(getattr(model_or_name, "config", None), "name", None) or "custom"
            self._install(model_or_name, name)
            return self.loaded
        name = os.fspath(model_or_name)
        self.choice = name
        from napari_sam2.weights.registry import REGISTRY

        if name in REGISTRY:
            from napari_sam2.weights.download import is_cached

            if not is_cached(name):
                self._state.submit(self._download_job(name))
        if name == BUNDLED and not bundled_model_installed():
            raise FileNotFoundError(
                "the bundled 'micro' model is not installed yet; pick an official model "
                "(e.g. 'sam2.1_hiera_tiny') or load a checkpoint file"
            )
        dev = self.device

        def load():
            from napari_sam2.weights.load import load_model

            if name in REGISTRY:
                from napari_sam2.weights.download import is_cached

                if not is_cached(name):  # the download failed or was cancelled
                    raise RuntimeError(f"{name} is not downloaded; press Load to try again")
            return load_model(name, device=dev, progress=None)

        job = self._state.submit(
            Job(
                f"loading model {Path(name).name}",
                load,
                kind="model",
                on_result=lambda m: self._install(m, Path(name).stem),
            )
        )
        if wait:
            self._state.jobs.wait()
            if job.error is not None:
                raise job.error
        return job

    def _download_job(self, name: str) -> Job:
        """Download an official checkpoint in a worker; yields progress, honours Cancel."""
        import threading

        from napari_sam2.weights.registry import REGISTRY

        info = REGISTRY[name]
        total_mb = (info.size_bytes or 0) // (1 << 20)
        job = Job(f"downloading {name}", lambda: None, kind="model", total=total_mb or None)

        def run():
            from napari_sam2.weights.download import ensure_weights

            state = {"done": 0, "error": None}

            def progress_cb(done: int, total: int | None) -> None:
                state["done"] = done

            def target():
                try:
                    ensure_weights(name, progress=progress_cb, cancel=job.cancel)
                except BaseException as exc:  # noqa: BLE001 - re-raised below
                    state["error"] = exc

            th = threading.Thread(target=target, name=f"napari-sam2 download {name}")
            th.start()
            shown = 0
            while th.is_alive():
                th.join(0.1)
                mb = state["done"] // (1 << 20)
                while shown < mb:
                    shown += 1
                    yield shown
            if state["error"] is not None:
                raise state["error"]
            return name

        job.fn = run
        job.on_result = lambda _: self._state.events.model_changed.emit()
        return job

    def set_device(self, device: str, *, wait: bool = False) -> None:
        """Compute on "auto", "cpu", "cuda" or "mps" (moves a loaded model; prompts re-run)."""
        _check_device(device)
        previous, self.device = self.device, device
        if self.loaded is None:
            self._state.report()
            return

        def move():
            from napari_sam2.weights.load import resolve_device

            model = self.loaded.to(resolve_device(device))  # in place: the session must follow
            self._sessions.replay()
            return model

        self._state.submit(
            Job(
                f"moving the model to {device}",
                move,
                kind="model",
                on_result=lambda m: self._install(m, self.name, rebuild=False),
                on_error=lambda exc: self._device_failed(previous),
            )
        )
        if wait:
            self._state.jobs.wait()

    def _device_failed(self, previous: str) -> None:
        self.device = previous
        self._state.events.model_changed.emit()
        self._state.report()

    def set_precision(self, precision: str) -> None:
        """ "fp32" or "bf16" (bfloat16 autocast; used from the next job on)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        self._state.report()

    def _install(self, model: Any, name: str | None, *, rebuild: bool = True) -> None:
        self.loaded = model.eval()
        self.name = name or "custom"
        cfg = model.config
        # keep the memory settings inside what this model can do
        changes = {}
        if self.settings.num_memory_frames > cfg.num_maskmem - 1:
            changes["num_memory_frames"] = cfg.num_maskmem - 1
        if self.settings.max_object_pointers > cfg.max_obj_ptrs_in_encoder:
            changes["max_object_pointers"] = cfg.max_obj_ptrs_in_encoder
        if changes:
            self._settings = self.settings.replace(**changes)
            self._state.events.settings_changed.emit()
        if rebuild:
            self._sessions.rebuild()
        self._state.events.model_changed.emit()
        self._state.report()

    def ensure_queued(self) -> None:
        """Queue loading the chosen model when none is loaded (no silent downloads).

        Raises:
            RuntimeError: no model loaded and none ready to load (the message says what to do).
        """
        jobs = self._state.jobs
        if (
            self.loaded is not None
            or any(j.kind == "model" for j in jobs.pending)
            or (jobs.current is not None and jobs.current.kind == "model")
        ):
            return
        choice = self.choice
        ready = {c["name"]: c["ready"] for c in model_choices()}
        if choice is None or not ready.get(choice, Path(str(choice)).is_file()):
            raise RuntimeError(
                "no model loaded: choose a model in the Model section and press Load "
                "(the bundled 'micro' model is not installed yet)"
                if choice in (None, BUNDLED)
                else f"no model loaded: press Load to download '{choice}' first"
            )
        self.set_model(choice)


def _check_device(device: str) -> None:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
