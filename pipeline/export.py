"""DVC stage `export`: the champion (reports/champion.json, chosen on validation by the champion stage) as
ONNX, LiteRT and OpenVINO files under reports/export/, each checked against Keras; reports/export.json."""

from __future__ import annotations

import sys
from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.stage_runner import run_stage, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "models", "prepared", "champion")
    parser.add_argument("--out", type=Path, default=artifacts.EXPORT, help="the exported files")
    parser.add_argument("--metrics", type=Path, default=artifacts.EXPORT_METRICS, help="every format's checks")
    parser.add_argument("--run", type=Path, default=artifacts.EXPORT_RUN, help="every format's latency")
    args = parser.parse_args(argv)

    def work(params):
        from inspectcnn.export import run

        return params.export.on_failure, run(params, args.models, args.prepared, args.out, args.metrics,
                                             args.champion, args.run)

    on_failure, result = run_stage("export", work, args.params)
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
    if failed and on_failure == "fail":
        print(f"export: error: {len(failed)} format(s) failed to export (export.on_failure: fail):\n  "
              + "\n  ".join(failed) + f"\nThe other formats are in {args.out}/ and every row in {args.metrics}. "
              "Fix the cause and run again, or set export.on_failure: warn to finish the pipeline without them "
              "(the report and the end of `make run` then name them).", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
