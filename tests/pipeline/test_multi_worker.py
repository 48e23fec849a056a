"""Several machines, proven on one: two worker processes on 127.0.0.1 train one model together through the
project's own train stage (``python -m pipeline.train``), as README "Several machines" tells a user to start
them, under TensorFlow (``train.strategy: multi_worker`` + ``TF_CONFIG``: MultiWorkerMirroredStrategy) and JAX
(``KERAS_DISTRIBUTION_*``: ``keras.distribution.initialize`` + DataParallel over both processes' CPUs).

Each worker runs in its own copy of the project (its own "machine"); both log to one MLflow store.
Asserted: each worker's train step sees half of every global batch; the trained weights are those of a
single-process run with the global batch from the same seed; only worker 0 writes the stage outputs and
one MLflow run; a worker killed mid-training makes the other fail with a clear message, within a bound.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import FAULTS, make_project, project_env
from inspectcnn.artifacts import ModelFolder

pytestmark = pytest.mark.slow

PARAMS = """
seed: 1
backend: {backend}
data: {{source: folder, path: images, classes: [ok, defect], image_size: 32, split: {{train: 0.5, val: 0.25, test: 0.25}}}}
mlflow: {{experiment: tiny}}
train: {{image_size: 32, batch_size: {batch}, epochs: {epochs}, strategy: {strategy}, mixed_precision: 'off',
        jit_compile: false, early_stopping_patience: 0, augment: {{flip: none}}}}
models:
  lenet: {{learning_rate: 0.001}}
"""
WORKERS = 2
PER_REPLICA = 8  # 32 training images: 2 global batches of 16 an epoch, every one full
TIMEOUT_S = 240


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cluster_env(backend: str, index: int, ports: list[int]) -> dict[str, str]:
    addresses = [f"127.0.0.1:{port}" for port in ports]
    if backend == "tensorflow":
        return {"TF_CONFIG": json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})}
    return {"KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(addresses),
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(len(addresses)), "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}


def _project(tmp_path: Path, backend: str, epochs: int) -> list[Path]:
    """Worker 0's project with prepared data, and a copy of it for each other worker."""
    params = PARAMS.format(backend=backend, batch=PER_REPLICA, epochs=epochs, strategy="multi_worker")
    first = make_project(tmp_path / "worker0", params, images={"ok": 40, "defect": 24})
    subprocess.run([sys.executable, "-m", "pipeline.prepare"], cwd=first, env=project_env(first), check=True,
                   capture_output=True, timeout=300)
    roots = [first]
    for index in range(1, WORKERS):
        roots.append(shutil.copytree(first, tmp_path / f"worker{index}"))
    return roots


def _train(roots: list[Path], backend: str, store: Path, faults: dict[int, str] | None = None):
    """Start one `python -m pipeline.train --name lenet` a worker; (return codes, outputs, seconds)."""
    ports = _free_ports(len(roots))
    processes = []
    for index, root in enumerate(roots):
        env = {**project_env(root), **_cluster_env(backend, index, ports), "KERAS_BACKEND": backend,
               "MLFLOW_TRACKING_URI": f"sqlite:///{store}", "INSPECTCNN_BATCH_LOG": str(root / "batches.log")}
        env["PYTHONPATH"] = f"{FAULTS}:{env['PYTHONPATH']}"
        if faults and index in faults:
            env["INSPECTCNN_FAULT"] = faults[index]
        processes.append(subprocess.Popen([sys.executable, "-m", "pipeline.train", "--name", "lenet"], cwd=root,
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                          start_new_session=True))
    started = time.monotonic()
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=max(1, TIMEOUT_S - (time.monotonic() - started)))[0])
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    return [p.returncode for p in processes], outputs, time.monotonic() - started


def _weights(path: Path) -> list[np.ndarray]:
    code = ("import sys, keras, numpy; "
            "numpy.savez(sys.argv[2], *keras.saving.load_model(sys.argv[1]).get_weights())")
    out = path.with_suffix(".npz")
    subprocess.run([sys.executable, "-c", code, str(path), str(out)], check=True, capture_output=True, timeout=120)
    with np.load(out) as found:
        return [found[f"arr_{i}"] for i in range(len(found.files))]


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_two_workers_train_one_model_like_one_process(tmp_path, backend):
    pytest.importorskip(backend)
    roots = _project(tmp_path, backend, epochs=2)
    store = tmp_path / "mlflow.db"
    codes, outputs, seconds = _train(roots, backend, store)
    assert codes == [0] * WORKERS, "\n".join(o[-3000:] for o in outputs)

    # Each worker's step saw its half of each global batch of 16.
    for root in roots:
        seen = [int(line) for line in (root / "batches.log").read_text().split()]
        assert seen and set(seen) == {PER_REPLICA}, (root.name, seen)
    if backend == "tensorflow":  # a line a step at run time: 2 epochs x 2 global batches on every worker
        assert [len((r / "batches.log").read_text().split()) for r in roots] == [4] * WORKERS

    # Worker 0 alone publishes the outputs and one MLflow run; the other keeps no work folder either.
    metrics = ModelFolder(roots[0] / "models" / "lenet").read_training()
    assert metrics["replicas"] == WORKERS
    for other in roots[1:]:
        assert not (other / "models").exists()
        assert not list(other.glob("checkpoints/*"))
    runs = mlflow_runs_at(store)
    assert [(r.info.run_name, r.info.status) for r in runs] == [("train@lenet", "FINISHED")]
    assert runs[0].data.metrics["replicas"] == WORKERS
    assert runs[0].info.run_id == metrics["mlflow_run_id"]

    # The same seed on one process with the global batch ends on the same weights.
    single = tmp_path / "single"
    shutil.copytree(roots[0], single, ignore=lambda folder, names: (
        {"models", "checkpoints", "batches.log"} & set(names) if Path(folder) == roots[0] else set()))
    (single / "params.yaml").write_text(PARAMS.format(backend=backend, batch=PER_REPLICA * WORKERS, epochs=2,
                                                      strategy="default"))
    alone = subprocess.run([sys.executable, "-m", "pipeline.train", "--name", "lenet"], cwd=single,
                           env={**project_env(single), "KERAS_BACKEND": backend,
                                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'single.db'}"},
                           capture_output=True, text=True, timeout=TIMEOUT_S)
    assert alone.returncode == 0, alone.stderr[-3000:]
    together, one = _weights(roots[0] / "models/lenet/model.keras"), _weights(single / "models/lenet/model.keras")
    difference = max(float(np.abs(a - b).max()) for a, b in zip(together, one))
    print(f"{backend}: 2 workers in {seconds:.1f} s; largest weight difference to one process: {difference:.2e}")
    assert difference < 1e-5


def mlflow_runs_at(store: Path) -> list:
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{store}")
    found = client.get_experiment_by_name("tiny")
    return client.search_runs([found.experiment_id]) if found else []


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_a_worker_killed_mid_training_fails_the_training_with_a_clear_message(tmp_path, backend):
    pytest.importorskip(backend)
    roots = _project(tmp_path, backend, epochs=30)
    store = tmp_path / "mlflow.db"
    codes, outputs, seconds = _train(roots, backend, store, faults={1: "kill@epoch_end:2"})
    print(f"{backend}: worker 0 ended {codes[0]} after {seconds:.1f} s")
    assert codes[1] == -signal.SIGKILL
    assert codes[0] not in (0, None), outputs[0][-3000:]  # failed, not hung (the timeout would have raised)
    assert "lost its peers" in outputs[0] and "no model was saved" in outputs[0], outputs[0][-3000:]
    assert not (roots[0] / "models" / "lenet" / "model.keras").exists()
    assert [r.info.status for r in mlflow_runs_at(store)] == ["FAILED"]
