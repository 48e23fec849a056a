"""What the MLflow UI costs this machine: processes and resident memory of `mlflow ui`'s whole process tree
once its REST API answers (and 20 s more, for its workers to start): MLflow's defaults (job execution on: a
GenAI job runner and Huey consumers; 4 uvicorn workers), job execution off, and job execution off with one
uvicorn worker (what `make ui` starts: one user on one machine).

    .venv/bin/python benchmarks/ui_footprint.py --store sqlite:///$PWD/mlflow.db [--settle 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil


def measure(store: str, port: int, job_execution: bool, settle: float, workers: int | None) -> dict:
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if job_execution else "false"}
    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen([str(mlflow), "ui", "--backend-store-uri", store, "--host", "127.0.0.1",
                               "--port", str(port), *(["--workers", str(workers)] if workers else [])], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        start = time.monotonic()
        while time.monotonic() - start < 120:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("mlflow ui did not answer within 120 s")
        ready_s = time.monotonic() - start
        time.sleep(settle)
        urllib.request.urlopen(url, timeout=5).read()  # still answering with its workers up
        tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        rss = sum(p.memory_info().rss for p in tree if p.is_running())
        return {"job_execution": job_execution, "processes": len(tree), "rss_mib": round(rss / 2**20),
                "ready_s": round(ready_s, 1)}
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True, help="an MLflow backend store URI (sqlite:///...)")
    parser.add_argument("--port", type=int, default=5077)
    parser.add_argument("--settle", type=float, default=20.0)
    args = parser.parse_args()
    for job_execution, workers in ((True, None), (False, None), (False, 1)):
        row = measure(args.store, args.port, job_execution, args.settle, workers)
        print(f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION={str(job_execution).lower():5s} --workers {workers or '4 (default)':11}"
              f"  {row['processes']:3d} processes  "
              f"{row['rss_mib']:6d} MiB resident  (REST answered after {row['ready_s']} s)")


if __name__ == "__main__":
    main()
