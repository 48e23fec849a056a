"""``make ui``: the MLflow UI on this project's store, started with only what browsing runs needs, and the
URL that opens the experiment's runs table.

MLflow 3.17's ``mlflow ui`` starts, by default, a GenAI job runner with Huey consumers and 4 uvicorn workers
(benchmarks/ui_footprint.py measures what that costs); browsing one project's runs needs none of it, so
``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` and one worker. And the UI opens an experiment on its GenAI
"Overview" page unless the URL says ``workflowType=machine_learning`` (a per-browser setting otherwise):
the URL printed here does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def experiment_url(store: str, experiment: str, host: str, port: int) -> str:
    """The URL of ``experiment``'s runs table in the UI, or the UI's home when the store has no such
    experiment yet (nothing has run)."""
    base = f"http://{host}:{port}/"
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        return base  # no store yet: asking MLflow would create an empty one
    try:
        from mlflow.tracking import MlflowClient

        found = MlflowClient(store).get_experiment_by_name(experiment)
    except Exception:  # noqa: BLE001 - a store the client cannot read: the UI itself will say why
        found = None
    return f"{base}#/experiments/{found.experiment_id}?workflowType=machine_learning" if found else base


# The MLflow servers this project starts (make ui, make server) run no GenAI job runner: tracking needs none.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def server_command(store: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of the UI server: one uvicorn worker, no job execution."""
    mlflow = str(Path(sys.executable).parent / "mlflow")
    env = {**os.environ, **SERVER_ENV}
    return [mlflow, "ui", "--backend-store-uri", store, "--host", host, "--port", str(port), "--workers", "1"], env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{Path.cwd()}/mlflow.db"))
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    from inspectcnn.config import load_params

    experiment = load_params(args.params).mlflow.experiment
    url = experiment_url(args.store, experiment, args.host, args.port)
    where = (f"the {experiment!r} runs table" if "#/experiments/" in url
             else f"no {experiment!r} runs yet in {args.store} (make run first)")
    print(f"MLflow UI: open {url}  ({where}); Ctrl-C stops it.", flush=True)
    command, env = server_command(args.store, args.host, args.port)
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
