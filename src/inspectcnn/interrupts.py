"""Ctrl-C that cannot be lost.

Python turns SIGINT into a KeyboardInterrupt at the next bytecode of the main thread; when that
bytecode belongs to a finalizer (``__del__``, of which TensorFlow has many), the exception is only
printed ("Exception ignored in ...") and the program runs on. A stage that ran on would finish
and publish its outputs after the user pressed Ctrl-C. So the stages' handler also records the
request: training checks it at every epoch end and before publishing anything.
"""

from __future__ import annotations

import signal
import threading

_requested = threading.Event()


def _on_sigint(signum, frame):
    _requested.set()
    raise KeyboardInterrupt


def install() -> None:
    """Record Ctrl-C (call from the main thread); leaves a SIGINT the parent chose to ignore ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even if its first KeyboardInterrupt was swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt("interrupted (Ctrl-C)")


def clear() -> None:
    """Forget a recorded Ctrl-C (tests)."""
    _requested.clear()
