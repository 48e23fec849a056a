"""DVC stage `anomaly@<entry>`: one anomaly detector of params.yaml, fitted on good training cells only (no defect
labels), saved and checked against its ONNX export, tracked in MLflow."""

from __future__ import annotations

from inspectcnn import artifacts
from inspectcnn.stage_runner import entry_parser, run_stage


def main(argv: list[str] | None = None) -> None:
    args = entry_parser(__doc__, "anomaly").parse_args(argv)

    def work(params):
        from inspectcnn.anomaly import run

        return run(args.name, params, args.prepared, args.out or artifacts.model_folder(args.name).root)

    metrics = run_stage(f"anomaly@{args.name}", work, args.params)
    print(f"anomaly@{args.name}: {metrics['method']} on {metrics['good_train_cells']} good training cells in "
          f"{metrics['wall_time_s']:.0f} s, peak memory {metrics['peak_rss_mb']:.0f} MB; ONNX "
          + (f"max |delta p| {metrics['onnx_probability_max_delta']:.1e}" if "onnx_probability_max_delta" in metrics
             else metrics["onnx_check"]))


if __name__ == "__main__":
    main()
