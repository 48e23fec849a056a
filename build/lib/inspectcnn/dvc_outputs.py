"""The one module that writes DVC metrics and plots files: always atomically, so an interrupted
stage never leaves a half-written file that DVC or the report would read."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_metrics(path: str | Path, metrics: Mapping) -> None:
    """A JSON metrics file (``dvc metrics show`` reads its numbers)."""
    _replace(Path(path), json.dumps(metrics, indent=2, sort_keys=False, default=float) + "\n")


def write_table(path: str | Path, rows: Iterable[Mapping], fieldnames: list[str] | None = None) -> None:
    """A CSV plots file (``dvc plots show`` reads its columns)."""
    rows = list(rows)
    fieldnames = fieldnames or (list(rows[0]) if rows else [])
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_metrics(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# Numbers that differ between two executions of the same stage with the same inputs (timings,
# MLflow run ids) go to a separate ``*run.json`` file, so that ``metrics.json``/``eval.json`` are
# byte-identical across deterministic reruns and ``dvc metrics diff`` shows only real changes.
RUN_KEYS = ("wall_time_s", "train_images_per_s", "mlflow_run_id", "feature_extraction_s", "frozen_phase_s",
            "finetune_phase_s", "finetune_images_per_s")


def write_split_metrics(folder: str | Path, metrics: Mapping, name: str = "metrics.json",
                        run_name: str = "run.json") -> None:
    """``metrics`` into ``name`` (reproducible numbers) and ``run_name`` (RUN_KEYS: this execution's)."""
    folder = Path(folder)
    write_metrics(folder / run_name, {k: v for k, v in metrics.items() if k in RUN_KEYS})
    write_metrics(folder / name, {k: v for k, v in metrics.items() if k not in RUN_KEYS})


def read_split_metrics(folder: str | Path, name: str = "metrics.json", run_name: str = "run.json") -> dict:
    """The two files of :func:`write_split_metrics` merged (a missing run file counts as empty)."""
    folder = Path(folder)
    run_file = folder / run_name
    return {**read_metrics(folder / name), **(read_metrics(run_file) if run_file.is_file() else {})}
