"""The README's first command on a fresh clone, timed: ``git clone`` of this repository, then ``make run``
(set-up and the whole ``dvc repro``), alone on the machine. Prints the total, each part of the pipeline and
whether the clone reproduced the committed results, and writes them to benchmarks/results/fresh_clone_run.json
(the figures README.md and docs/ give for the run time come from that file: ``make docs``).

Each stage's time runs from its ``Running stage`` line to the next one (the set-up: to the first). About an
hour on 2 cores; run it with nothing else on the machine.

    python benchmarks/fresh_clone_run.py [--work /tmp/inspectcnn-fresh-clone] [--repo .]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fresh_clone_run.json"
STAGE = re.compile(r"^Running stage '([^']+)'")
# the parts the docs show, in pipeline order: (name, the stages it holds: a name, or a prefix ending in @)
PARTS = (
    ("prepare and health", ("prepare", "health")),
    ("networks trained from scratch", ("train@",)),
    ("transfer (the champion's recipe)", ("transfer@",)),
    ("anomaly detector", ("anomaly@",)),
    ("evaluations", ("evaluate@", "evaluate_transfer@", "evaluate_anomaly@", "evaluate_ensemble")),
    ("ensemble and champion", ("ensemble", "champion")),
    ("export (the champion's formats and checks)", ("export",)),
    ("edge student (distil and its evaluation)", ("distil", "evaluate_edge")),
    ("report and register", ("report", "register")),
)


def part_of(stage: str) -> str | None:
    """The part a stage belongs to (None: a stage the table does not know)."""
    for name, members in PARTS:
        if any(stage == m or (m.endswith("@") and stage.startswith(m)) for m in members):
            return name
    return None
COMPARED = ("models/*/scores.json", "reports/summary.json", "reports/edge/scores.json", "reports/champion.json")


def cpu() -> dict:
    """The CPU's model name and whether it has AVX-512 (3-4x in training speed on this project's machines)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    return {"model": model, "cores": os.cpu_count(), "avx512": " avx512f" in info}


def timed_run(clone: Path) -> tuple[int, float, list[tuple[str, float]]]:
    """``make run`` in ``clone``, its output passed through; (exit code, seconds, [(stage, start second)])."""
    begin = time.perf_counter()
    starts = []
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    with subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as process:
        for line in process.stdout:
            sys.stdout.write(line)
            found = STAGE.match(line)
            if found:
                starts.append((found.group(1), time.perf_counter() - begin))
    return process.returncode, time.perf_counter() - begin, starts


def stage_seconds(starts: list[tuple[str, float]], total: float) -> dict[str, float]:
    """Each stage's seconds: from its start line to the next stage's (the last one: to the end of make run)."""
    ends = [s for _, s in starts[1:]] + [total]
    return {name: round(end - start, 1) for (name, start), end in zip(starts, ends)}


def parts(stages: dict[str, float], setup: float) -> list[dict]:
    """The stages summed into the docs' parts, with the set-up first."""
    rows = [{"part": "set-up (virtual environment, packages)", "minutes": round(setup / 60, 1)}]
    for name, _ in PARTS:
        rows.append({"part": name, "minutes": round(sum(s for stage, s in stages.items() if part_of(stage) == name) / 60, 1)})
    unknown = sum(s for stage, s in stages.items() if part_of(stage) is None)
    if unknown:
        rows.append({"part": "other stages", "minutes": round(unknown / 60, 1)})
    return rows


def same_results(clone: Path) -> list[str]:
    """The committed result files that the clone's run did not reproduce byte for byte."""
    differ = []
    for pattern in COMPARED:
        for committed in sorted(ROOT.glob(pattern)):
            relative = committed.relative_to(ROOT)
            produced = clone / relative
            if not produced.is_file() or produced.read_bytes() != committed.read_bytes():
                differ.append(str(relative))
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT, help="the repository to clone (its committed HEAD)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/inspectcnn-fresh-clone"))
    args = parser.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    subprocess.run(["git", "clone", "--quiet", str(args.repo.resolve()), str(args.work)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.work, capture_output=True, text=True,
                            check=True).stdout.strip()
    rc, total, starts = timed_run(args.work)
    stages = stage_seconds(starts, total)
    status = subprocess.run([str(args.work / ".venv" / "bin" / "dvc"), "status"], cwd=args.work, capture_output=True,
                            text=True).stdout.strip()
    result = {"command": "git clone <repo> && make run", "commit": commit, "rc": rc, "seconds": round(total),
              "minutes": round(total / 60, 1), "cpu": cpu(),
              "parts": parts(stages, starts[0][1] if starts else total), "stages": stages,
              "dvc_status_after": status, "not_reproduced": same_results(args.work) if rc == 0 else None}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nmake run on a fresh clone of {commit}: rc {rc} in {result['seconds']} s ({result['minutes']} min) on "
          f"{result['cpu']['cores']} cores ({result['cpu']['model']}, AVX-512 {result['cpu']['avx512']})")
    print("\n| part | minutes |\n|---|---|")
    for row in result["parts"]:
        print(f"| {row['part']} | {row['minutes']} |")
    print(f"\ndvc status afterwards: {status}")
    if result["not_reproduced"] is not None:
        print("committed results reproduced byte for byte" if not result["not_reproduced"] else
              f"not reproduced byte for byte: {', '.join(result['not_reproduced'])}")
    sys.exit(rc)


if __name__ == "__main__":
    main()
