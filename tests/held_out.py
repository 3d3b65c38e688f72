"""Seeds of the synthetic movies the accuracy tests use, outside every training run's range.

The trainer draws each training movie's seed with ``rng.integers(2**31)``
(``napari_sam2.train.clips.clip_stream``), so whatever its own seed, its movies have seeds in
``[0, 2**31)``. The test movies use seeds at or above ``2**31``: disjoint by construction
(``tests/weights/test_accuracy.py`` checks both halves of that claim).
"""

#: the trainer's movie seeds lie in [0, TRAIN_SEED_END)
TRAIN_SEED_END = 2**31
#: synthetic test movies: seeds the training stream cannot draw
HELD_OUT_SEEDS = tuple(TRAIN_SEED_END + k for k in (11, 23, 37, 41, 53))
