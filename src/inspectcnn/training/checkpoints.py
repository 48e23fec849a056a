"""Work in progress and its publication.

Work lives in ``checkpoints/<entry>-<params hash>/`` (not a DVC output, so DVC does not delete it
when the stage is rerun): the BackupAndRestore state, the best model so far and the per-epoch
history. A killed run resumes from its last completed epoch; changed params get a fresh folder.
Only a completed run copies its results into the stage outputs, all of them or none.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from inspectcnn import interrupts

CHECKPOINTS = Path("checkpoints")


@dataclass(frozen=True)
class TrainResult:
    metrics: dict
    model_path: Path
    history_path: Path


def work_dir(prefix: str, seed: int, config) -> Path:
    """``checkpoints/<prefix>-<hash of seed and config>``: one folder per distinct run; the other workers of a
    multi-worker training (:mod:`inspectcnn.cluster`) each get their own beside the chief's."""
    from inspectcnn.cluster import worker
    from inspectcnn.tracking import params_hash

    here = worker()
    suffix = "" if here.chief else f"-worker{here.index}"
    return CHECKPOINTS / f"{prefix}-{params_hash({'seed': seed, **config.model_dump()})}{suffix}"


def best_so_far(history_path: Path, monitor: str, mode: str) -> float | None:
    """The best ``monitor`` value of the epochs already done (a resumed ModelCheckpoint starts from it)."""
    if not history_path.is_file():
        return None
    with history_path.open() as handle:
        values = [float(row[monitor]) for row in csv.DictReader(handle) if row.get(monitor) not in (None, "")]
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def read_history(path: Path) -> list[dict]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    # After a resume CSVLogger appends; keep the last row per epoch.
    by_epoch = {int(row["epoch"]): row for row in rows}
    return [by_epoch[e] for e in sorted(by_epoch)]


def publish(work_dir: Path, out_dir: Path, metrics: dict) -> TrainResult:
    """Copy the finished results into the stage outputs, then drop the work folder. A worker other than the
    chief of a multi-worker training (:mod:`inspectcnn.cluster`) only drops its own work folder."""
    from inspectcnn.cluster import worker
    from inspectcnn.artifacts import ModelFolder, write_table

    interrupts.check()  # never publish after a Ctrl-C, even one whose KeyboardInterrupt was swallowed
    if not worker().chief:
        shutil.rmtree(work_dir, ignore_errors=True)
        return TrainResult(metrics, work_dir / "best.keras", ModelFolder(work_dir).history)
    folder = ModelFolder(out_dir)
    model_path, history_path = folder.model, folder.history
    rows = read_history(ModelFolder(work_dir).history)
    for row in rows:
        row["epoch"] = int(row["epoch"]) + 1  # 1-based in the outputs
    with interrupts.deferred():  # all of the outputs or none: a Ctrl-C here is raised once they are written
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = model_path.with_name(f".{model_path.name}.tmp")
        shutil.copyfile(work_dir / "best.keras", tmp)
        os.replace(tmp, model_path)
        write_table(history_path, rows)
        folder.write_training(metrics)
    shutil.rmtree(work_dir, ignore_errors=True)
    return TrainResult(metrics, model_path, history_path)
