"""Registry of Meta's official SAM 2 / SAM 2.1 checkpoint files.

Each entry is keyed by the checkpoint file stem (e.g. ``"sam2.1_hiera_tiny"``), which is also
the key of the matching architecture in :data:`napari_sam2.model.config.CONFIGS`.

Provenance of the integrity data (``size_bytes`` in bytes, ``sha256`` as lower-case hex):

* SHA-256 values are the Git-LFS object ids that Hugging Face shows for the same files.
  ``sam2_hiera_{tiny,small,base_plus}`` and ``sam2.1_hiera_{tiny,small}`` come from Meta's own
  ``facebook/sam2-hiera-*`` and ``facebook/sam2.1-hiera-*`` model pages.
  ``sam2_hiera_large``, ``sam2.1_hiera_base_plus`` and ``sam2.1_hiera_large`` come from
  several independent re-uploads that agree with one another (``merve/sam2-hiera-large``,
  ``camenduru/sam2-1-hiera`` and others). Those same re-uploads also carry the files that
  match Meta's pages. The ``sam2_hiera_small`` hash is also pinned against the
  ``dl.fbaipublicfiles.com`` URL by a third-party script, so the Hugging Face copies and the
  Meta CDN copies are the same files.
* Exact sizes come from Git-LFS pointer files (``size`` line) whose ``oid`` equals the hash
  above. ``sam2_hiera_small`` has no such pointer on record, so its size is left unknown.

A wrong value here would only make downloads fail with a clear checksum error. It can never
let a bad file through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUNDLED_MODEL",
    "REGISTRY",
    "WeightsInfo",
    "bundled_checkpoint_path",
    "get_weights_info",
]

#: Name of the model shipped inside the package (``weights/micro.pt``).
BUNDLED_MODEL = "micro"

_BASE_V20 = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
_BASE_V21 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"


@dataclass(frozen=True)
class WeightsInfo:
    """One downloadable checkpoint file.

    Attributes:
        name: registry key, the file stem (e.g. ``"sam2.1_hiera_tiny"``).
        url: where the file is downloaded from.
        filename: file name in the cache directory (e.g. ``"sam2.1_hiera_tiny.pt"``).
        config_name: key into :data:`napari_sam2.model.config.CONFIGS`.
        size_bytes: exact file size in bytes, or ``None`` if unknown.
        sha256: lower-case hex SHA-256 of the file, or ``None`` if unknown.
        description: one-line human-readable description.
    """

    name: str
    url: str
    filename: str
    config_name: str
    size_bytes: int | None
    sha256: str | None
    description: str


def _entry(
    stem: str, base: str, size_bytes: int | None, sha256: str | None, description: str
) -> WeightsInfo:
    return WeightsInfo(
        name=stem,
        url=f"{base}{stem}.pt",
        filename=f"{stem}.pt",
        config_name=stem,
        size_bytes=size_bytes,
        sha256=sha256,
        description=description,
    )


_ENTRIES: tuple[WeightsInfo, ...] = (
    # SAM 2.1 (released 2024-09-28).
    _entry(
        "sam2.1_hiera_tiny",
        _BASE_V21,
        156008466,
        "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
        "SAM 2.1 Hiera-T (38.9 M params, ~156 MB): fastest, recommended default",
    ),
    _entry(
        "sam2.1_hiera_small",
        _BASE_V21,
        184416285,
        "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
        "SAM 2.1 Hiera-S (46 M params, ~184 MB)",
    ),
    _entry(
        "sam2.1_hiera_base_plus",
        _BASE_V21,
        323606802,
        "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
        "SAM 2.1 Hiera-B+ (80.8 M params, ~324 MB)",
    ),
    _entry(
        "sam2.1_hiera_large",
        _BASE_V21,
        898083611,
        "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
        "SAM 2.1 Hiera-L (224.4 M params, ~898 MB): most accurate, slowest",
    ),
    # SAM 2.0 (released 2024-07-28).
    _entry(
        "sam2_hiera_tiny",
        _BASE_V20,
        155906050,
        "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125",
        "SAM 2.0 Hiera-T (~156 MB)",
    ),
    _entry(
        "sam2_hiera_small",
        _BASE_V20,
        None,
        "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3",
        "SAM 2.0 Hiera-S (~184 MB)",
    ),
    _entry(
        "sam2_hiera_base_plus",
        _BASE_V20,
        323493298,
        "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071",
        "SAM 2.0 Hiera-B+ (~323 MB)",
    ),
    _entry(
        "sam2_hiera_large",
        _BASE_V20,
        897952466,
        "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b",
        "SAM 2.0 Hiera-L (~898 MB)",
    ),
)

REGISTRY: dict[str, WeightsInfo] = {e.name: e for e in _ENTRIES}


def get_weights_info(name: str) -> WeightsInfo:
    """Look up an official checkpoint by registry name.

    Args:
        name: file stem such as ``"sam2.1_hiera_tiny"`` (a trailing ``".pt"`` is accepted).

    Returns:
        The matching :class:`WeightsInfo`.

    Raises:
        KeyError: if ``name`` is not in the registry. The message lists the known names.
    """
    key = name[:-3] if name.endswith(".pt") else name
    try:
        return REGISTRY[key]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise KeyError(f"unknown checkpoint {name!r}; known checkpoints: {known}") from None


def bundled_checkpoint_path() -> Path:
    """Path of the bundled micro checkpoint inside the installed package (no torch import).

    Returns:
        ``<package>/weights/micro.pt``; the file may be missing from a source checkout.
    """
    return Path(__file__).with_name(f"{BUNDLED_MODEL}.pt")
