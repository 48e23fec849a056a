"""Prepare scaling: wall time and peak memory of the `prepare` stage on 1k, 10k and 50k images.

    python benchmarks/prepare_scaling.py                   # 1000 10000 50000
    python benchmarks/prepare_scaling.py --sizes 1000 5000 --workdir /tmp/synth

Generates a synthetic folder data set of 300x300 grayscale PNG cells (two class folders, every
image different: a brightness gradient, busbars, grain and, for the "defective" class, dark
cracks), once, in --workdir (reused by later runs). Each size is a folder of hard links to the
first N images, prepared by `pipeline/prepare.py` in a fresh process with the project's params
(only data.source/path changed), exactly as `dvc repro prepare` runs it. Peak RSS is that process's
own maximum resident set (os.wait4), wall time includes starting Python and importing TensorFlow.
That fixed start-up (measured as the best of three prepares of 30 images) is also subtracted to
give the time per image of the work that grows with the data set, the figure the target is about.
Writes benchmarks/results/prepare_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ("functional", "defective")
SIZE = 300


def synthetic_cell(index: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    image = 120 + 40 * rng.random() * (x / SIZE) + 30 * rng.random() * (y / SIZE)
    grain = rng.normal(0, 12, (SIZE // 10, SIZE // 10)).repeat(10, 0).repeat(10, 1)
    image += grain
    for row in rng.integers(40, SIZE - 40, 3):  # busbars
        image[row:row + 4, :] -= 60
    if index % 3 == 0:  # one image in three is "defective": dark cracks
        for _ in range(rng.integers(1, 4)):
            x0, y0, x1, y1 = rng.integers(0, SIZE, 4)
            steps = np.linspace(0, 1, 400)
            xs = (x0 + (x1 - x0) * steps).astype(int)
            ys = (y0 + (y1 - y0) * steps).astype(int)
            image[ys, xs] -= 90
    return np.clip(image, 0, 255).astype(np.uint8)


def _write(args: tuple[int, str]) -> None:
    index, folder = args
    label = CLASSES[1] if index % 3 == 0 else CLASSES[0]
    Image.fromarray(synthetic_cell(index)).save(Path(folder) / label / f"cell_{index:06d}.png", compress_level=1)


def generate(folder: Path, count: int) -> Path:
    marker = folder / f".complete-{count}"
    if marker.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for label in CLASSES:
        (folder / label).mkdir(parents=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write, [(i, str(folder)) for i in range(count)], chunksize=256))
    marker.touch()
    print(f"generated {count} images in {time.perf_counter() - started:.1f} s under {folder}", flush=True)
    return folder


def subset(source: Path, target: Path, count: int) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    for label in CLASSES:
        (target / label).mkdir(parents=True)
    for index in range(count):
        label = CLASSES[1] if index % 3 == 0 else CLASSES[0]
        name = f"cell_{index:06d}.png"
        os.link(source / label / name, target / label / name)
    return target


def run_prepare(data: Path, work: Path) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update({"source": "folder", "path": str(data), "classes": list(CLASSES)})
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    out = work / "prepared"
    command = [sys.executable, str(ROOT / "pipeline" / "prepare.py"), "--params", str(work / "params.yaml"),
               "--out", str(out), "--summary", str(work / "prepare.json")]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    output = process.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"prepare failed on {data}:\n{output}")
    stored = sum(f.stat().st_size for f in out.glob("*/*.npy")) or sum(f.stat().st_size for f in out.rglob("*"))
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "prepared_mib": round(stored / 2**20, 1), "stage_output": output.strip().splitlines()[-1]}


def startup_seconds(source: Path, workdir: Path, count: int = 30, repeats: int = 3) -> float:
    """The stage's fixed cost: starting Python, importing TensorFlow, listing, writing the metadata,
    measured as the best of a few prepares of ``count`` images."""
    walls = []
    for _ in range(repeats):
        work = Path(tempfile.mkdtemp(prefix="prepare-startup-", dir=workdir))
        walls.append(run_prepare(subset(source, work / "data", count), work)["wall_s"])
        shutil.rmtree(work, ignore_errors=True)
    return min(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 50000])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "inspectcnn-synthetic")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/prepare_scaling.json"))
    args = parser.parse_args()

    source = generate(args.workdir / "all", max(args.sizes))
    startup = startup_seconds(source, args.workdir)
    print(f"start-up (best prepare of 30 images: Python, TensorFlow import, listing, metadata): {startup:.2f} s")
    results = []
    for count in sorted(args.sizes):
        work = Path(tempfile.mkdtemp(prefix=f"prepare-{count}-", dir=args.workdir))
        data = subset(source, work / "data", count)
        row = {"images": count, **run_prepare(data, work)}
        row["ms_per_image"] = round(1000 * row["wall_s"] / count, 3)
        row["ms_per_image_after_startup"] = round(1000 * (row["wall_s"] - startup) / count, 3)
        results.append(row)
        print(f"{count:6d} images: {row['wall_s']:8.1f} s, {row['ms_per_image']:6.2f} ms/image "
              f"({row['ms_per_image_after_startup']:.2f} after start-up), "
              f"peak RSS {row['peak_rss_mib']:7.1f} MiB   [{row['stage_output']}]", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    # Fixed start-up cost (Python, TensorFlow import) and cost per image, by least squares.
    counts = np.array([r["images"] for r in results], dtype=float)
    walls = np.array([r["wall_s"] for r in results])
    if len(results) >= 2:
        per_image, fixed = np.polyfit(counts, walls, 1)
        print(f"fit: {fixed:.1f} s fixed + {1000 * per_image:.2f} ms/image")
    else:
        per_image, fixed = walls[0] / counts[0], 0.0
    per = [r["ms_per_image"] for r in results]
    after = [r["ms_per_image_after_startup"] for r in results]
    summary = {"startup_s": round(startup, 2), "fixed_s": round(float(fixed), 2),
               "marginal_ms_per_image": round(1000 * float(per_image), 3),
               "ms_per_image_spread": round(max(per) / min(per) - 1, 3),
               "ms_per_image_after_startup_spread": round(max(after) / min(after) - 1, 3),
               "peak_rss_mib_max": max(r["peak_rss_mib"] for r in results)}
    print(f"time per image spread {100 * summary['ms_per_image_spread']:.0f} % with start-up, "
          f"{100 * summary['ms_per_image_after_startup_spread']:.0f} % without (target <= 25 %), "
          f"largest peak RSS {summary['peak_rss_mib_max']:.0f} MiB (target < 1024)")
    Path(args.out).write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "results": results, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
