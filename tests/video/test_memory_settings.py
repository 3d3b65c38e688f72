"""MemorySettings: a torch-free module whose fields carry their docs; the CLI flags come from it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import napari_sam2
from napari_sam2.video import memory_bank, memory_settings
from napari_sam2.video.memory_settings import MemorySettings, setting_fields


def test_public_name_and_old_import_path_are_the_same_class():
    assert napari_sam2.MemorySettings is MemorySettings
    assert memory_bank.MemorySettings is MemorySettings


def test_module_and_cli_parser_do_not_import_torch():
    code = (
        "import sys\n"
        "from napari_sam2.video.memory_settings import MemorySettings\n"
        "from napari_sam2.cli import build_parser\n"
        "build_parser()\n"
        "MemorySettings().validate()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_field_is_documented_once():
    names = [f.name for f in setting_fields()]
    assert names == [f.name for f in dataclasses.fields(MemorySettings)]
    assert len(names) == 12
    for f in setting_fields():
        for key in ("doc", "label", "tooltip"):
            assert len(f.metadata[key]) > 5, (f.name, key)
        assert f"    {f.name}: " in MemorySettings.__doc__  # generated Attributes section
    assert MemorySettings.__doc__.startswith("How much of the past")


def test_defaults_and_replace():
    s = MemorySettings()
    assert (s.num_memory_frames, s.max_prompted_frames, s.use_object_pointers) == (6, None, True)
    t = s.replace(num_memory_frames=2, non_overlap=True)
    assert (t.num_memory_frames, t.non_overlap, s.num_memory_frames) == (2, True, 6)
    with pytest.raises(TypeError, match="unknown memory setting"):
        s.replace(num_memory_frame=2)
    with pytest.raises(ValueError, match="num_memory_frames"):
        s.replace(num_memory_frames=9).validate()


def test_cli_flags_are_generated_from_the_fields():
    from napari_sam2.cli import build_parser
    from napari_sam2.cli.common import _memory_settings

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["segment"]
    flags = {opt: a for a in sub._actions for opt in a.option_strings}
    for f in setting_fields():
        flag = "--" + f.name.replace("_", "-")
        assert flag in flags, flag
        first_words = " ".join(f.metadata["doc"].replace("``", "").split()[:4])
        assert first_words in flags[flag].help, (flag, flags[flag].help)
        if isinstance(f.default, bool):
            assert "--no-" + f.name.replace("_", "-") in flags

    args = sub.parse_args(
        ["m.tif", "--num-memory-frames", "3", "--no-use-object-pointers",
         "--max-prompted-frames", "all", "--fill-holes-area", "0"]
    )  # fmt: skip
    settings = _memory_settings(args)
    assert settings == MemorySettings(
        num_memory_frames=3, use_object_pointers=False, fill_holes_area=0
    )
    assert memory_settings.__all__ == ["MemorySettings", "setting_fields"]
