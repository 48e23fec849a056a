"""Ctrl-C that cannot be lost, and that cannot land where it would corrupt state.

Python turns SIGINT into a KeyboardInterrupt at the next bytecode of the main thread, wherever
that is. Two places are unsafe:

* a finalizer (``__del__``, of which TensorFlow has many): the exception is only printed
  ("Exception ignored in ...") and the program runs on. A stage that ran on would finish and
  publish its outputs after the user pressed Ctrl-C. So the stages' handler also records the
  request: training checks it at every epoch end and before publishing anything.
* a write to the MLflow store. A KeyboardInterrupt raised inside SQLAlchemy's ``execute`` leaves
  the interrupted SQLite connection open, in a reference cycle, holding the database's write
  lock; the ``end_run(status="KILLED")`` that follows waits out SQLite's busy timeout, fails
  with "database is locked", and the run stays RUNNING in the MLflow UI for ever. So MLflow
  calls run inside :func:`deferred`: a Ctrl-C there is recorded and raised as soon as the call
  has returned, with the store consistent. A second Ctrl-C inside the same region raises at
  once (the user insists; the next start of the stage marks a run left RUNNING by a dead process KILLED).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_requested = threading.Event()
_state = {"depth": 0, "pending": 0}


def _on_sigint(signum, frame):
    _requested.set()
    if _state["depth"] and _state["pending"] == 0:
        _state["pending"] = 1  # raised when the protected region ends
        return
    raise KeyboardInterrupt


def install() -> None:
    """Record Ctrl-C (call from the main thread); leaves a SIGINT the parent chose to ignore ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def installed() -> bool:
    return signal.getsignal(signal.SIGINT) is _on_sigint


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even if its first KeyboardInterrupt was swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt("interrupted (Ctrl-C)")


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a first Ctrl-C back until the block is done, then raise it (main thread; nests).

    For short sections that must not be torn in the middle: MLflow store writes, publishing the
    stage outputs. Without :func:`install` (library use, tests) it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only ever handled in the main thread
        return
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["pending"]:
            _state["pending"] = 0
            raise KeyboardInterrupt("interrupted (Ctrl-C)")


def clear() -> None:
    """Forget a recorded Ctrl-C (tests)."""
    _requested.clear()
    _state["pending"] = 0
