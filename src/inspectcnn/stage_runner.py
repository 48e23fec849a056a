"""What every stage entry point shares: logging set-up and turning known errors into one clear line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("INSPECTCNN_LOG", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    if not sys.stderr.isatty():  # MLflow's artifact bars are carriage-return lines in a log or a pipe
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _inputs() -> dict[str, tuple[Path, str]]:
    """The pipeline files several stages read: --<name> (default, help)."""
    from inspectcnn import artifacts

    return {"models": (artifacts.MODELS, "every entry's folder"),
            "prepared": (artifacts.PREPARED, "the prepare stage's output"),
            "summary": (artifacts.PREPARE_SUMMARY, "the prepare stage's summary"),
            "champion": (artifacts.CHAMPION, "the champion stage's record")}


def stage_parser(description: str, *inputs: str) -> argparse.ArgumentParser:
    """The arguments every stage takes: the params file (parsed once, by :func:`run_stage`), and ``inputs``,
    any of the shared pipeline files (models, prepared, summary, champion) with their default paths."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="the params file (default params.yaml)")
    known = _inputs()
    for name in inputs:
        default, text = known[name]
        parser.add_argument(f"--{name}", type=Path, default=default, help=f"{text} (default {default})")
    return parser


def entry_parser(description: str, section: str, *, output: str = "--out") -> argparse.ArgumentParser:
    """The arguments every per-entry stage takes: the entry, params.yaml, its input and output folders."""
    parser = stage_parser(description, "prepared")
    names = ("--name", "--model") if section == "models" else ("--name",)
    parser.add_argument(*names, dest="name", required=True, help=f"an entry of the {section}: section of params.yaml")
    parser.add_argument(output, type=Path, help="the entry's folder (default models/<name>)")
    return parser


def run_stage(name: str, work: Callable[..., T], params_file: str | Path | None = None) -> T:
    """Run a stage: ``work(params)`` with ``params_file`` parsed once (``work()`` without one); a user error
    (bad params, bad data) exits 2 with its message, not a traceback."""
    from inspectcnn import interrupts
    from inspectcnn.errors import UserError

    setup_logging()
    interrupts.install()
    try:
        if params_file is None:
            return work()
        from inspectcnn.config import load_params

        return work(load_params(params_file))
    except UserError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        sys.exit(2)
