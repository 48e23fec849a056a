"""What every stage entry point shares: logging set-up and turning known errors into one clear line."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("INSPECTCNN_LOG", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter


def run_stage(name: str, work: Callable[[], T]) -> T:
    """Run a stage; a user error (bad params, bad data) exits 2 with its message, not a traceback."""
    from inspectcnn import interrupts
    from inspectcnn.errors import UserError

    setup_logging()
    interrupts.install()
    try:
        return work()
    except UserError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        sys.exit(2)
