"""The one-line summary of the divisions a ``segment`` run found (2-D and 3-D + time)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["division_summary"]


def division_summary(lineage: dict[int, int], ctc: str | None) -> str:
    """'divisions: 2 (lineage in DIR/res_track.txt): 1 -> 5, 6; 3 -> 7, 8'.

    Args:
        lineage: ``{daughter_id: mother_id}``.
        ctc: the CTC result folder the lineage was written to, or None.

    Returns:
        The line (at most five mothers are named).
    """
    mothers: dict[int, list[int]] = {}
    for daughter, mother in sorted(lineage.items()):
        mothers.setdefault(mother, []).append(daughter)
    where = f" (lineage in {Path(ctc) / 'res_track.txt'})" if ctc else ""
    shown = "; ".join(f"{m} -> {', '.join(map(str, ds))}" for m, ds in sorted(mothers.items())[:5])
    more = "; ..." if len(mothers) > 5 else ""
    return f"divisions: {len(mothers)}{where}" + (f": {shown}{more}" if shown else "")
