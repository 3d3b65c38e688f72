"""Average checkpoints' weights (a "model soup", :mod:`napari_sam2.train.average`).

The bundled ``micro.pt`` is built with::

    python scripts/average_weights.py NUCLEI_MODEL.pt GENERALIST.pt --weights 0.4 0.6 \\
        --out src/napari_sam2/weights/micro.pt

(see ``docs/micro_model.md`` for the two inputs and the measured numbers).
"""

from __future__ import annotations

import argparse

from napari_sam2.train.average import average_checkpoints


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="checkpoints of one architecture")
    ap.add_argument("--weights", nargs="+", type=float, required=True,
                    help="one weight per checkpoint (normalised to sum 1)")
    ap.add_argument("--out", required=True, help="averaged checkpoint to write")
    ap.add_argument("--note", default=None, help="provenance text stored in the checkpoint")
    args = ap.parse_args()
    try:
        out = average_checkpoints(args.checkpoints, args.weights, args.out, args.note)
    except ValueError as e:
        ap.error(str(e))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
