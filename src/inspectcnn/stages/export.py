"""DVC stage `export`: the champion (chosen as the report ranks, on the evaluate stages' results) as ONNX,
LiteRT and OpenVINO files under reports/export/, each checked against Keras; reports/export.json."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from inspectcnn import paths
from inspectcnn.cli_support import run_stage
from inspectcnn.config import load_params

log = logging.getLogger(__name__)


def champion_of(params, models: Path) -> str:
    """The first of the report's ranking (params.report.rank_by on each entry's eval.json)."""
    from inspectcnn.report import collect, ranking

    return ranking(collect(params, models), params.report.rank_by)[0]["model"]


def run(params, models: Path, prepared: Path, out: Path, metrics: Path) -> dict:
    from inspectcnn import export
    from inspectcnn.dvc_outputs import write_metrics

    export.resolve_formats(params)  # a format params name that cannot be exported: an error before any work
    champion = champion_of(params, models)
    log.info("export: champion %s (%s) -> %s", champion, params.report.rank_by, out)
    result = export.export_champion(params, champion, models, prepared, out)
    write_metrics(metrics, result)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--models", type=Path, default=paths.MODELS, help="every entry's folder")
    parser.add_argument("--prepared", type=Path, default=paths.PREPARED)
    parser.add_argument("--out", type=Path, default=paths.EXPORT, help="the exported files")
    parser.add_argument("--metrics", type=Path, default=paths.EXPORT_METRICS)
    args = parser.parse_args(argv)
    params = run_stage("export", lambda: load_params(args.params))
    result = run_stage("export", lambda: run(params, args.models, args.prepared, args.out, args.metrics))
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
