"""Incremental rebuild: what a no-op `dvc repro` costs, and what one edited learning rate reruns.

    python benchmarks/incremental_rebuild.py                 # edits models.lenet.learning_rate
    python benchmarks/incremental_rebuild.py --entry resnet18 --repeats 5

Run it in the default project after a complete `dvc repro` (it refuses when `dvc status` shows
work to do, since the no-op time would then not be a no-op). Steps:
1. `dvc repro` with nothing changed, --repeats times: wall time of each (target: under 5 s).
2. Doubles `models.<entry>.learning_rate` in params.yaml, runs `dvc repro` for real and records
   the stages it ran and their wall time. Target: exactly train@<entry>, evaluate@<entry> and
   report. (`dvc repro --dry` is not enough: it lists only the stages whose own dependencies
   changed, train@<entry>, because it cannot know that the new model changes the evaluation's.)
3. Puts params.yaml back byte for byte and runs `dvc repro` again, so the project ends as it
   started: DVC's run cache restores the entry's original train and evaluate outputs without
   running them; the report (whose outputs are `cache: false`) is rebuilt. With --dry, step 2 is
   a dry run and step 3 is skipped.
Writes benchmarks/results/incremental_rebuild.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def dvc(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([shutil.which("dvc") or "dvc", *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout + done.stderr


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entry", default="lenet", help="the models entry whose learning rate is edited")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dry", action="store_true", help="only ask DVC what it would run after the edit")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/incremental_rebuild.json"))
    args = parser.parse_args()

    _, status = dvc("status")
    if "up to date" not in status:
        sys.exit(f"the pipeline has work to do; run `dvc repro` first.\n{status}")

    noop = []
    for _ in range(args.repeats):
        wall, output = dvc("repro")
        if "Running stage" in output:
            sys.exit(f"a no-op `dvc repro` ran stages:\n{output}")
        noop.append(round(wall, 2))
        print(f"no-op dvc repro: {wall:.2f} s", flush=True)

    params_file = ROOT / "params.yaml"
    original = params_file.read_bytes()
    params = yaml.safe_load(original)
    entry = params["models"][args.entry] or {}
    old = entry.get("learning_rate", params["train"]["learning_rate"])
    pattern = re.compile(rf"^(  {re.escape(args.entry)}:\s*\{{)(.*)$", re.MULTILINE)
    line = pattern.search(original.decode())
    if line is None:
        sys.exit(f"models.{args.entry} is not a one-line {{...}} mapping in params.yaml; edit it by hand")
    body = line.group(2)
    if "learning_rate" in body:
        body = re.sub(r"learning_rate:\s*[^,}]+", f"learning_rate: {old * 2}", body)
    else:
        body = body.replace("}", f", learning_rate: {old * 2}}}", 1)
    edited = original.decode()[: line.start(2)] + body + original.decode()[line.end(2):]
    run = ("repro", "--dry") if args.dry else ("repro",)
    try:
        params_file.write_text(edited)
        assert yaml.safe_load(edited)["models"][args.entry]["learning_rate"] == old * 2
        print(f"models.{args.entry}.learning_rate {old} -> {old * 2}: dvc {' '.join(run)} ...", flush=True)
        wall_edit, output = dvc(*run)
    finally:
        params_file.write_bytes(original)
    rerun = ran_stages(output)
    # the ensemble chooses on every entry's validation probabilities, the export and the edge student follow the
    # champion
    expected = [f"train@{args.entry}", f"evaluate@{args.entry}", "ensemble", "evaluate_ensemble", "champion", "export",
                "distil", "evaluate_edge", "report", "register"]
    print(f"after the edit dvc {'would run' if args.dry else 'ran'}: {', '.join(rerun)} ({wall_edit:.1f} s)")
    print(f"expected exactly {', '.join(expected)}: {'yes' if sorted(rerun) == sorted(expected) else 'NO'}")
    wall_back, rerun_back = None, None
    if not args.dry:
        wall_back, output = dvc("repro")
        rerun_back = ran_stages(output)
        print(f"params.yaml restored; dvc repro ran {', '.join(rerun_back)} ({wall_back:.1f} s)")
    result = {
        "noop_repro_s": noop, "noop_repro_median_s": statistics.median(noop),
        "edited": f"models.{args.entry}.learning_rate {old} -> {old * 2}",
        "executed": not args.dry, "rerun": rerun, "expected": expected,
        "only_expected": sorted(rerun) == sorted(expected), "edited_repro_s": round(wall_edit, 1),
        "restored_rerun": rerun_back, "restored_repro_s": wall_back and round(wall_back, 1),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
