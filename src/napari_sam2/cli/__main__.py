"""``python -m napari_sam2.cli``: the ``napari-sam2`` command without the console script."""

import sys

from . import main

sys.exit(main())
