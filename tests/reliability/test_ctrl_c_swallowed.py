"""A Ctrl-C whose KeyboardInterrupt Python swallowed (raised inside a finalizer) still stops training
at the next epoch end and publishes nothing; one inside a deferred block (an MLflow write, the
publishing of outputs) is raised when the block ends, a second one at once."""

from __future__ import annotations

import gc
import os
import signal

import pytest

from inspectcnn import interrupts
from inspectcnn.config import parse_params
from inspectcnn.training import train

from helpers import tiny_prepared

pytestmark = [pytest.mark.reliability,
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture
def handler():
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupts.install()
    yield
    signal.signal(signal.SIGINT, previous)
    interrupts.clear()


class SignalledInFinalizer:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside __del__: Python only prints it
        for _ in range(1000):
            pass


def test_a_swallowed_ctrl_c_is_remembered(handler):
    SignalledInFinalizer()  # collected at once; "Exception ignored in ..." on stderr
    gc.collect()
    assert interrupts.requested()
    with pytest.raises(KeyboardInterrupt):
        interrupts.check()


def test_training_stops_at_the_epoch_end_and_publishes_nothing(handler, tmp_path):
    prepared = tiny_prepared(tmp_path / "data")
    config = parse_params({"models": {"lenet": {"image_size": 24, "batch_size": 8, "epochs": 5,
                                                "early_stopping_patience": 0}}}).model("lenet")
    SignalledInFinalizer()
    gc.collect()
    out = tmp_path / "models" / "lenet"
    with pytest.raises(KeyboardInterrupt):
        train("lenet", config, prepared, out, seed=0, work_dir=tmp_path / "work")
    rows = (tmp_path / "work" / "history.csv").read_text().splitlines()
    assert len(rows) - 1 <= 1  # stopped at the first epoch end, not after 5
    assert not out.exists()


def test_a_ctrl_c_inside_a_deferred_block_is_raised_when_the_block_ends(handler):
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler has certainly run by now
                pass
            finished.append(True)  # the protected work completes
    assert finished == [True]
    assert interrupts.requested()


def test_a_second_ctrl_c_inside_a_deferred_block_raises_at_once(handler):
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
            os.kill(os.getpid(), signal.SIGINT)  # the user insists
            for _ in range(1000):
                pass
            finished.append(True)
    assert finished == []


def test_deferred_blocks_nest_and_raise_only_at_the_outermost_end(handler):
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):
                    pass
            reached.append("after inner")
    assert reached == ["after inner"]
