"""The out-of-distribution score of the exported champion, measured through the ONNX file's second output.

Builds the probe sets of the export stage (:func:`inspectcnn.ood_probes.probe_sets`: the test split, uniform
noise, constant frames, crops of ordinary photographs, the test cells rotated and blurred), runs
``reports/export/model.onnx`` on them with ONNX Runtime as a user would, and prints per set the share flagged
``unknown`` at the threshold that travels in ``inference.json`` and the ROC-AUC of telling the set from the test
cells by the score; then the largest difference to the scores the export stage measured with scikit-learn.
Goal: at least 95 % of noise, constant frames and photographs flagged, at most 6 % of the test split.

    python benchmarks/ood_check.py [--export reports/export] [--prepared data/prepared] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, default=ROOT / "reports" / "export")
    parser.add_argument("--metrics", type=Path, default=ROOT / "reports" / "export.json")
    parser.add_argument("--prepared", type=Path, default=ROOT / "data" / "prepared")
    parser.add_argument("--seed", type=int, default=None, help="the probe sets' seed (default params.yaml's)")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    import onnxruntime

    from inspectcnn.config import load_params
    from inspectcnn.export import split_arrays
    from inspectcnn.ood_probes import check_table, probe_sets
    from inspectcnn.serving import read_spec

    spec = read_spec(args.export / "inference.json")
    if not spec.get("ood"):
        raise SystemExit(f"{args.export / 'inference.json'} carries no out-of-distribution score (export.ood)")
    seed = args.seed if args.seed is not None else load_params(ROOT / "params.yaml").seed
    session = onnxruntime.InferenceSession(str(args.export / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    size, channels = int(spec["input"]["size"]), int(spec["input"]["channels"])
    sets = probe_sets(split_arrays(args.prepared, "test", size, channels)[0], seed, spec)
    scores = {}
    for key, (_, images) in sets.items():
        scores[key] = np.concatenate([np.ravel(session.run(None, {name: images[i:i + 16]})[1])
                                      for i in range(0, len(images), 16)]).astype(np.float64)
    value = float(spec["ood"]["threshold"])
    rows = check_table(scores, {k: d for k, (d, _) in sets.items()}, value)
    print(f"OOD score of {spec['model']} through {args.export / 'model.onnx'} (ONNX Runtime, second output "
          f"{session.get_outputs()[1].name!r}); threshold {value:.4f} ({spec['ood']['threshold_rule']}); "
          f"k = {spec['ood']['k']}, stages {spec['ood'].get('stages', [])}\n")
    print("| images | count | flagged unknown | OOD ROC-AUC vs test cells | median score |")
    print("|---|---|---|---|---|")
    for row in rows:
        auc = f"{row['roc_auc_vs_test']:.3f}" if "roc_auc_vs_test" in row else ""
        print(f"| {row['description']} | {row['count']} | {100 * row['flagged']:.1f} % | {auc} | "
              f"{row['median_score']:.4f} |")
    goal = min(r["flagged"] for r in rows if r["set"] in ("noise", "constant", "photographs"))
    test = next(r["flagged"] for r in rows if r["set"] == "test")
    print(f"\ngoal (>= 95 % of noise, constant frames, photographs; <= 6 % of test): "
          f"{'met' if goal >= 0.95 and test <= 0.06 else 'MISSED'} (lowest {100 * goal:.1f} %, test {100 * test:.1f} %)")
    if args.metrics.is_file():
        stage = {r["set"]: r for r in json.loads(args.metrics.read_text())["ood"]["checks"]}
        worst = max(abs(stage[r["set"]]["median_score"] - r["median_score"]) for r in rows)
        same = all(stage[r["set"]]["flagged"] == r["flagged"] for r in rows)
        print(f"against the export stage's scikit-learn scores ({args.metrics}): largest median difference "
              f"{worst:.1e}; flagged shares {'identical' if same else 'DIFFER'}")
    if args.json:
        args.json.write_text(json.dumps({"threshold": value, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
