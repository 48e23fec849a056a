"""Helpers shared by the tests (importable: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def write_image(path: Path, rng: np.random.Generator, size=(40, 40), mode="L") -> Path:
    """A random image with a class-independent texture; distinct for every call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": (), "RGB": (3,)}[mode]
    pixels = rng.integers(0, 256, size=(*size, *channels), dtype=np.uint8)
    Image.fromarray(pixels, mode=mode).save(path)
    return path


PROJECT_FILES = ("dvc.yaml", ".dvcignore", "pipeline", "src")


def make_project(root: Path, params: str, images: dict[str, int] | None = None, size=(48, 48)) -> Path:
    """A fresh git + DVC copy of this project with its own params.yaml and a generated image folder.

    Classes get different textures (smooth vs. noisy) so that even tiny runs learn something.
    """
    import shutil
    import subprocess

    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif source.exists():
            shutil.copy(source, root / name)
    rng = np.random.default_rng(0)
    for label, count in (images or {"ok": 40, "defect": 24}).items():
        for i in range(count):
            pixels = rng.normal(128, 10 if label == "ok" else 60, size).clip(0, 255).astype(np.uint8)
            path = root / "images" / label / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
    (root / "params.yaml").write_text(params)
    (root / ".gitignore").write_text("/images\nmlflow.db\n/checkpoints\n")
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=root, check=True, capture_output=True)
    return root


def project_env(root: Path) -> dict[str, str]:
    """Environment for running the copy: its own src first, the default MLflow store."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(root / "src")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


FAULTS = Path(__file__).resolve().parent / "faults"


def fault_env(root: Path, fault: str, marker: Path | None = None) -> dict[str, str]:
    """project_env with tests/faults/sitecustomize.py armed: ``fault`` as ``<action>@<moment>[:<epoch>]``."""
    env = project_env(root)
    env["PYTHONPATH"] = f"{FAULTS}:{env['PYTHONPATH']}"
    env["INSPECTCNN_FAULT"] = fault
    if marker is not None:
        env["INSPECTCNN_FAULT_MARKER"] = str(marker)
    return env


def run_in(root: Path, *command: str, check: bool = True):
    import subprocess

    result = subprocess.run(list(command), cwd=root, env=project_env(root), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def mlflow_runs(root: Path, experiment: str = "tiny") -> list:
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


TINY_PARAMS = """
seed: 1
backend: tensorflow
data: {source: folder, path: images, classes: [ok, defect], image_size: 32, split: {train: 0.5, val: 0.25, test: 0.25}}
mlflow: {experiment: tiny}
train: {image_size: 32, batch_size: 8, epochs: 2, early_stopping_patience: 0, augment: {flip: horizontal}}
models:
  lenet: {learning_rate: 0.001}
  simple_cnn: {learning_rate: 0.001}
evaluate: {latency_runs: 2, latency_batch: 8, tta: flips, bootstrap: 50}
ensemble: {candidates: auto, max_members: 3}
report: {rank_by: roc_auc, gradcam_per_category: 1, error_gallery: 4}
register: {registry_name: inspectcnn-champion}
export: {formats: [onnx], calibration_size: 16, latency_runs: 3}
edge: {epochs: 1, learning_rate: 0.001}
health: {folds: 2, feature_size: 32}
anomaly: {}
transfer:
  tiny_hed: {weights: hed-vgg16, image_size: 32, head: [8], frozen_epochs: 2, finetune_epochs: 1}
"""


# the good-only anomaly detector (a Lite0 backbone at 32 px, ONNX-checked): about a minute a project, so only the
# projects that check it (report, JAX, declared inputs, CI's smoke run) add it: TINY_PARAMS.replace(*WITH_ANOMALY)
WITH_ANOMALY = ("anomaly: {}\n", """anomaly:
  tiny_padim: {image_size: 32, dims: 16}
""")


def prepare_folder(root: Path, tmp_path: Path, **overrides):
    """(summary, output folder) of the prepare stage on a folder data set (16 px unless overridden)."""
    from inspectcnn.config import DataConfig
    from inspectcnn.data.prepare import run as prepare

    config = DataConfig(**{"source": "folder", "path": str(root), "image_size": 16, **overrides})
    out = tmp_path / "prepared"
    return prepare(config, out, tmp_path / "summary.json", seed=3), out


def read_manifest(out: Path) -> list[dict]:
    import csv

    with (out / "manifest.csv").open() as handle:
        return list(csv.DictReader(handle))


def tiny_prepared(root: Path, image_size: int = 24) -> Path:
    """A prepared 48-image two-class data set (30 ok, 18 defect) under ``root``; returns its folder."""
    from inspectcnn.config import DataConfig
    from inspectcnn.data.prepare import run as prepare

    make_project(root, "", images={"ok": 30, "defect": 18})
    config = DataConfig(source="folder", path=str(root / "images"), image_size=image_size, classes=("ok", "defect"))
    prepare(config, root / "prepared", root / "summary.json", seed=0)
    return root / "prepared"


SYMPY = ("onnx_int8: conversion failed (ImportError: sympy is required for symbolic shape inference in "
         "quantization preprocessing.)")


def export_result(**overrides) -> dict:
    """An export stage result: formats ok, failed (SYMPY), outside tolerance and skipped."""
    rows = {"keras": {"status": "ok"},
            "onnx": {"status": "ok", "within_tolerance": True, "size_bytes": 2**20, "latency_b1_ms": 1.0,
                     "accuracy": 0.9, "check": "max |delta p| 1e-7"},
            "onnx_int8": {"status": "failed", "error": SYMPY},
            "litert_int8": {"status": "ok", "within_tolerance": False, "size_bytes": 2**19, "latency_b1_ms": 1.0,
                            "accuracy": 0.8, "check": "int8 accuracy 0.80 vs 0.90 in Keras: MISSED"},
            "openvino": {"status": "skipped", "reason": "needs the Python package(s) openvino (not installed)"}}
    rows.update(overrides)
    return {"champion": "lenet", "threshold": 0.5, "test_count": 16, "formats": rows}


# every format the export stage knows (auto), where the other tiny projects export ONNX alone, and an anomaly entry
FULL_PARAMS = TINY_PARAMS.replace("formats: [onnx], ", "").replace(*WITH_ANOMALY)


def audited_env(root: Path, log: Path) -> dict[str, str]:
    """project_env with the read audit of tests/faults/sitecustomize.py: each stage process appends the files it
    opens for reading under data/, models/ and reports/ to ``log`` (``<stage>\\t<path>``)."""
    env = project_env(root)
    env["PYTHONPATH"] = f"{FAULTS}:{env['PYTHONPATH']}"
    env["INSPECTCNN_READ_LOG"] = str(log)
    return env


def audited_repro(root: Path, log: Path, *targets: str) -> str:
    done = subprocess.run(["dvc", "repro", *targets], cwd=root, env=audited_env(root, log), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def copy_project(root: Path, to: Path) -> Path:
    """A copy of a finished project (git, DVC cache, outputs, source images) that a test may change."""
    shutil.copytree(root, to, symlinks=True)
    return to
