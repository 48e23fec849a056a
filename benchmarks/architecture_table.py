"""Architecture summary of every registered model: parameters, MACs per image, receptive field.

    python benchmarks/architecture_table.py --size 224 --channels 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from inspectcnn.models import list_models
from inspectcnn.models.summary import summarize_architecture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/architectures.json")
    args = parser.parse_args()
    rows = []
    print(f"| model | input | params | MACs (G) | receptive field (px) |\n|---|---|---|---|---|")
    for name in list_models():
        summary = summarize_architecture(name, (args.size, args.size, args.channels))
        rows.append(summary.row())
        print(f"| {name} | {args.size}x{args.size}x{args.channels} | {summary.params:,} | "
              f"{summary.macs / 1e9:.3f} | {summary.receptive_field} |", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
