"""``VideoSession.propagate`` checks its arguments when called, with plain-number messages, and
a session driven from two threads at once says it is not thread-safe."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_sam2.video.prompts import validate_box
from napari_sam2.video.session import VideoSession


@pytest.fixture
def session(model, movie):
    s = VideoSession(model, movie, axes="TYX", workers=1)
    s.add_points(2, 1, [[14, 16]], [1])
    yield s
    s.frames.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((2, "both", 3), "stop must be a (first, last) pair of frames, e.g. (0, 7); got 3"),
        ((2, "both", (0, 1)), "stop (first=0, last=1) must enclose start 2"),
        ((2, "both", (0, 1, 2)), "pair of frames; got 3 values"),
        ((4, "forward", 1), "stop 1 is before start 4"),
        ((1, "backward", 4), "stop 4 is after start 1"),
        ((None, "sideways"), "direction must be 'forward', 'backward' or 'both', got 'sideways'"),
        ((np.float64(2.0),), "start must be a whole frame number, got 2.0"),
        (("2",), "start must be a whole frame number, got '2'"),
        ((True,), "start must be a whole frame number, got True"),
        ((2, "forward", np.int64(9)), "stop 9 is out of range: the movie has frames 0..7"),
        ((np.int64(-1),), "start -1 is out of range"),
    ],
)
def test_bad_arguments_raise_value_error_at_the_call(session, args, message):
    with pytest.raises(ValueError) as info:
        session.propagate(*args)  # no next(): the check is eager
    assert message in str(info.value)
    assert "np." not in str(info.value)


def test_good_arguments_still_propagate(session):
    assert [r.frame for r in session.propagate(2, "forward", 4)] == [2, 3, 4]
    assert [r.frame for r in session.propagate(2, "backward", np.int64(1))] == [2, 1]
    assert [r.frame for r in session.propagate(2, "both", (1, 3))] == [2, 3, 1]


def test_box_message_prints_plain_numbers():
    with pytest.raises(ValueError) as info:
        validate_box(np.array([290.0, 290.0, 300.0, 300.0]), (64, 64))
    assert str(info.value) == (
        "box (y0=290, x0=290, y1=300, x1=300) lies outside the image (64 x 64 pixels)"
    )


def test_a_second_thread_gets_a_clear_error(session):
    gen = session.propagate(2)
    next(gen)  # this thread is propagating
    errors: list[BaseException] = []

    def other() -> None:
        try:
            next(session.propagate(2))
        except BaseException as err:  # noqa: BLE001 - checked below
            errors.append(err)
        try:
            session.add_points(3, 2, [[30, 40]], [1])
        except BaseException as err:  # noqa: BLE001 - checked below
            errors.append(err)

    worker = threading.Thread(target=other, name="second")
    worker.start()
    worker.join()
    assert len(errors) == 2
    for err in errors:
        assert isinstance(err, RuntimeError)
        assert "VideoSession is not thread-safe" in str(err) and "'second'" in str(err)
    # the owner thread goes on undisturbed; once it closes, another thread may take over
    assert next(gen).frame == 3
    gen.close()
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.extend(r.frame for r in session.propagate(6)))
    worker.start()
    worker.join()
    assert done == [6, 7]
