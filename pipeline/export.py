"""DVC stage `export`: the champion (reports/champion.json, chosen on validation by the champion stage) as
ONNX, LiteRT and OpenVINO files under reports/export/, each checked against Keras; reports/export.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import load_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--models", type=Path, default=paths.MODELS, help="every entry's folder")
    parser.add_argument("--prepared", type=Path, default=paths.PREPARED)
    parser.add_argument("--out", type=Path, default=paths.EXPORT, help="the exported files")
    parser.add_argument("--metrics", type=Path, default=paths.EXPORT_METRICS)
    parser.add_argument("--champion", type=Path, default=paths.CHAMPION, help="the champion stage's record")
    args = parser.parse_args(argv)
    params = run_stage("export", lambda: load_params(args.params))

    def work():
        from inspectcnn.export import export_stage

        return export_stage(params, args.models, args.prepared, args.out, args.metrics, args.champion)

    result = run_stage("export", work)
    lines = [f"export: {result['champion']} at threshold {result['threshold']:.3f}, checked on "
             f"{result['test_count']} test images:"]
    for fmt, row in result["formats"].items():
        if row["status"] == "ok" and fmt != "keras":
            lines.append(f"  {fmt:15s} {row['size_bytes'] / 2**20:7.1f} MiB  {row['latency_b1_ms']:7.2f} ms  "
                         f"accuracy {row['accuracy']:.4f}  {row['check']}")
        elif fmt != "keras":
            lines.append(f"  {fmt:15s} {row['status'].upper()}: {row.get('error') or row.get('reason')}")
    print("\n".join(lines))
    from inspectcnn.export import problems

    failed = problems(result)["failed"]
    if failed and params.export.on_failure == "fail":
        print(f"export: error: {len(failed)} format(s) failed to export (export.on_failure: fail):\n  "
              + "\n  ".join(failed) + f"\nThe other formats are in {args.out}/ and every row in {args.metrics}. "
              "Fix the cause and run again, or set export.on_failure: warn to finish the pipeline without them "
              "(the report and the end of `make run` then name them).", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
