"""Ctrl-C stress: `dvc repro train@lenet` interrupted again and again on a busy CPU; counts failures.

    python benchmarks/ctrl_c_stress.py                      # 20 x the flaky cases, 5 x the others
    python benchmarks/ctrl_c_stress.py --repeats 3 --no-load

Each repetition runs the real `dvc repro` of a tiny project (LeNet, 40 epochs on 120 generated
images) with every core kept busy by spinning processes, sends Ctrl-C (SIGINT to the whole process
group, as a terminal does) at one moment, and checks what a user would see afterwards:

* `dvc repro` exited non-zero, and `dvc status` shows `train@lenet` as changed;
* every MLflow run the repetition created is KILLED (none RUNNING, none FINISHED);
* the stage outputs are all there or none of them (never a half-published set), and none are
  there unless the Ctrl-C came during publishing.

Moments: ``external`` is the old test's way, from outside, once history.csv has 2 rows (racy by
design: it lands wherever the stage happens to be; right after the CSV row that is usually the
per-epoch MLflow write). The others fire from inside the stage at an exact point through
``tests/faults/sitecustomize.py``: ``run_started``, ``mid_epoch:2``, ``checkpoint:2``,
``mlflow_write:2`` (inside SQLAlchemy's execute of a metrics insert) and ``publish``.
Writes benchmarks/results/ctrl_c_stress.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import TINY_PARAMS, fault_env, make_project, mlflow_runs, project_env, run_in  # noqa: E402

FLAKY = ("external", "mlflow_write:2")
OTHERS = ("run_started", "mid_epoch:2", "checkpoint:2", "publish")
PARAMS = TINY_PARAMS.replace("epochs: 2,", "epochs: 40,").replace("  simple_cnn: {learning_rate: 0.001}\n", "")


def history_rows(root: Path) -> int:
    files = list((root / "checkpoints").glob("lenet-*/history.csv"))
    return len(files[0].read_text().splitlines()) - 1 if files else 0


def one(root: Path, moment: str) -> dict:
    """One interrupted `dvc repro`; returns what was seen and the problems found (empty: all good)."""
    for name in ("models", "checkpoints"):
        shutil.rmtree(root / name, ignore_errors=True)
    before = {r.info.run_id for r in mlflow_runs(root)}
    marker = root / "fault-fired"
    marker.unlink(missing_ok=True)
    env = project_env(root) if moment == "external" else fault_env(root, f"sigint@{moment}", marker)
    started = time.perf_counter()
    process = subprocess.Popen(["dvc", "repro", "train@lenet"], cwd=root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    if moment == "external":
        while process.poll() is None and history_rows(root) < 2:
            time.sleep(0.05)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
    output = process.communicate(timeout=900)[0].decode(errors="replace")
    runs = [r for r in mlflow_runs(root) if r.info.run_id not in before]
    statuses = [r.info.status for r in runs]
    outputs = [(root / "models" / "lenet" / name).exists() for name in ("model.keras", "history.csv", "metrics.json")]
    status = run_in(root, "dvc", "status", "train@lenet").stdout
    problems = []
    if moment != "external" and not marker.exists():
        problems.append("the fault never fired")
    if process.returncode == 0:
        problems.append("dvc repro exited 0")
    if statuses != ["KILLED"]:
        problems.append(f"MLflow runs {statuses}")
    if len(set(outputs)) != 1 or (all(outputs) and moment not in ("publish", "external")):
        problems.append(f"outputs model/history/metrics present: {outputs}")
    if "up to date" in status:
        problems.append("dvc status: up to date")
    if "database is locked" in output:
        problems.append("database is locked")
    return {"moment": moment, "seconds": round(time.perf_counter() - started, 1), "returncode": process.returncode,
            "epochs_done": history_rows(root), "statuses": statuses, "problems": problems,
            "output_tail": output[-2000:] if problems else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="repetitions of the flaky cases " + str(FLAKY))
    parser.add_argument("--other-repeats", type=int, default=5, help="repetitions of each other moment")
    parser.add_argument("--no-load", action="store_true", help="leave the CPU idle")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/ctrl_c_stress.json"))
    args = parser.parse_args()

    spinners = [] if args.no_load else [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                                        for _ in range(os.cpu_count() or 2)]
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            root = make_project(Path(folder) / "p", PARAMS, images={"ok": 60, "defect": 60})
            run_in(root, "dvc", "repro", "prepare")
            plan = [m for m in FLAKY for _ in range(args.repeats)] + [m for m in OTHERS for _ in range(args.other_repeats)]
            for index, moment in enumerate(plan, 1):
                result = one(root, moment)
                results.append(result)
                verdict = "ok" if not result["problems"] else "FAIL " + "; ".join(result["problems"])
                print(f"{index:3d}/{len(plan)} {moment:15s} {result['seconds']:5.1f} s, epochs done "
                      f"{result['epochs_done']:2d}, runs {result['statuses']}: {verdict}", flush=True)
    finally:
        for spinner in spinners:
            spinner.kill()

    failures = Counter(r["moment"] for r in results if r["problems"])
    summary = {m: {"runs": sum(r["moment"] == m for r in results), "failures": failures.get(m, 0)}
               for m in dict.fromkeys(r["moment"] for r in results)}
    print("\nmoment           runs  failures")
    for moment, row in summary.items():
        print(f"{moment:15s} {row['runs']:5d} {row['failures']:9d}")
    print(f"total: {len(results)} interrupted runs, {sum(failures.values())} failures, "
          f"CPU {'idle' if args.no_load else f'busy ({len(spinners)} spinning processes)'}")
    Path(args.out).write_text(json.dumps({"load_processes": len(spinners), "summary": summary, "runs": results},
                                         indent=1) + "\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
