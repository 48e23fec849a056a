"""What users look at, from the tiny project: report, DVC metrics/plots, registry, predict."""

from __future__ import annotations

import csv
import json
import re

import pytest

from helpers import run_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(full_project):
    return full_project[0]  # every export format and the anomaly entry (tests/pipeline/conftest.py)


def test_report_names_every_model_and_embeds_each_figure(project):
    html = (project / "reports" / "report.html").read_text()
    for name in ("lenet", "simple_cnn", "tiny_hed", "tiny_padim"):
        assert name in html
    for figure in ("ROC and PR curves", "accuracy against MACs", "confusion matrices", "learning curves",
                   "Grad-CAM lenet", "anomaly map tiny_padim"):
        assert re.search(f'alt="{figure}[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]{{200,}}"', html), figure
    assert "http://" not in html and "https://" not in html  # self-contained
    summary = json.loads((project / "reports" / "summary.json").read_text())
    assert summary["champion"] in ("lenet", "simple_cnn", "tiny_hed", "tiny_padim", "ensemble")
    assert summary["models"] == 5
    markdown = (project / "reports" / "report.md").read_text()
    assert "Champion" in markdown and "| ensemble | ensemble |" in markdown
    assert "| tiny_padim | anomaly (no defect labels) |" in markdown  # in the table and the paired comparison
    # every test accuracy and ROC-AUC carries its bootstrap interval; the runner-ups are tested against the champion
    assert len(re.findall(r"\| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", markdown)) >= 4
    assert "paired bootstrap on the same test cells" in markdown
    assert lo_hi_contains(summary["champion_ci95"]["accuracy"], _eval(project, summary["champion"])["accuracy"])


def test_the_champion_is_chosen_on_validation_once_and_every_later_stage_reads_that_record(project):
    record = json.loads((project / "reports" / "champion.json").read_text())
    summary = json.loads((project / "reports" / "summary.json").read_text())
    export = json.loads((project / "reports" / "export.json").read_text())
    assert record["split"] == "val" and record["select_by"] == "roc_auc"
    assert summary["champion"] == export["champion"] == record["champion"]
    values = {c["model"]: c["value"] for c in record["candidates"]}
    assert record["value"] == max(values.values()) == values[record["champion"]]
    for name, value in values.items():
        if name != "ensemble":  # the ensemble is judged by its out-of-fold score, not its in-sample one
            assert abs(_eval(project, name)["val"]["roc_auc"] - value) < 1e-6
    card = (project / "reports" / "model_card.md").read_text()
    assert "chosen on the validation split" in card and "test ranking" not in card


def _eval(project, name):
    return json.loads((project / "models" / name / "eval.json").read_text())


def lo_hi_contains(interval, value):
    return interval[0] <= value <= interval[1]


def test_dvc_metrics_show_is_one_row_per_model_with_the_comparable_columns(project):
    """`dvc metrics show` as the README gives it: a row per model, the same dozen columns, nothing that
    fails to load; summaries and timings stay plain outputs that a named target still shows."""
    from inspectcnn.scoring import SCORE_KEYS

    shown = run_in(project, "dvc", "metrics", "show")
    assert "failed to load" not in shown.stdout + shown.stderr
    lines = [line.split() for line in shown.stdout.splitlines() if line.strip()]
    assert lines[0] == ["Path", *sorted(SCORE_KEYS)]
    assert sorted(row[0] for row in lines[1:]) == sorted([*(f"models/{name}/scores.json"
                                                         for name in ("ensemble", "lenet", "simple_cnn", "tiny_hed", "tiny_padim")),
                                                       "reports/edge/scores.json"])  # the edge student is a row too
    assert all(len(row) == len(SCORE_KEYS) + 1 for row in lines[1:])
    for name in ("lenet", "tiny_hed"):  # the same numbers as the full evaluation
        scores = json.loads((project / "models" / name / "scores.json").read_text())
        assert scores["accuracy"] == round(_eval(project, name)["accuracy"], 4)
        assert scores["val_roc_auc"] == round(_eval(project, name)["val"]["roc_auc"], 4)
    export = json.loads(run_in(project, "dvc", "metrics", "show", "reports/export.json", "--json").stdout)
    assert "reports/export.json" in json.dumps(export)
    plots = run_in(project, "dvc", "plots", "show", "--json").stdout
    assert "models/lenet/roc.csv" in plots and "models/lenet/history.csv" in plots


def test_eval_metrics_are_consistent(project):
    result = json.loads((project / "models" / "lenet" / "eval.json").read_text())
    c = result["confusion"]
    assert c["tn"] + c["fp"] + c["fn"] + c["tp"] == result["count"] == 16  # 25 % of 64
    assert result["accuracy"] == pytest.approx((c["tp"] + c["tn"]) / result["count"])
    assert result["cost"]["macs"] > 0
    latency = json.loads((project / "models" / "lenet" / "eval_run.json").read_text())
    assert latency["latency_batch1"]["median_ms"] > 0  # kept out of eval.json: it differs on every run


def test_registered_champion_is_exactly_the_evaluated_model_with_its_tta(project):
    """The registry serves what evaluate measured: same probabilities on the test cells, TTA included."""
    import mlflow
    import numpy as np

    from inspectcnn.data.dataset import load_split

    champion = json.loads((project / "reports" / "summary.json").read_text())["champion"]
    assert _eval(project, champion)["tta"] == "flips"
    with (project / "models" / champion / "predictions.csv").open() as handle:
        expected = {r["id"]: float(r["probability"]) for r in csv.DictReader(handle)}
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/inspectcnn-champion@champion")
    size = model.metadata.get_input_schema().inputs[0].shape[1]
    got = {}
    data = load_split(project / "data" / "prepared", "test", image_size=size, batch_size=64, channels=1)
    probabilities = np.concatenate([model.predict(data[i][0])["probability"].to_numpy() for i in range(len(data))])
    got = {item: float(p) for item, p in zip(data.ids, probabilities)}
    assert got.keys() == expected.keys()
    assert max(abs(got[k] - expected[k]) for k in got) < 1e-4


def test_registered_champion_labels_at_its_validation_threshold(project):
    """The threshold travels with the registered model: pyfunc labels, version tags and description carry it."""
    import mlflow
    import numpy as np
    from mlflow.tracking import MlflowClient

    champion = json.loads((project / "reports" / "summary.json").read_text())["champion"]
    threshold = _eval(project, champion)["threshold"]
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/inspectcnn-champion@champion")
    from inspectcnn.data.dataset import load_split

    shape = model.metadata.get_input_schema().inputs[0].shape
    x = load_split(project / "data" / "prepared", "test", image_size=shape[1], batch_size=64, channels=1)[0][0]
    out = model.predict(x)
    assert list(out.columns) == ["probability", "label", "class", "ood_score", "in_distribution"]
    inside = out[out["in_distribution"]]
    assert len(inside) >= len(out) // 2  # test cells: mostly in distribution
    assert (inside["label"] == (inside["probability"] >= threshold).astype(int)).all()
    assert set(inside["class"]) <= {"defect", "ok"}
    assert (model.predict(x, params={"threshold": 0.0})["label"][out["in_distribution"]] == 1).all()  # an override
    noise = model.predict(np.random.default_rng(0).random((6, *shape[1:]), dtype=np.float32))
    assert (~noise["in_distribution"]).all() and (noise["label"] == -1).all() and set(noise["class"]) == {"unknown"}
    version = MlflowClient().get_model_version_by_alias("inspectcnn-champion", "champion")
    assert float(version.tags["threshold"]) == pytest.approx(threshold)
    assert version.tags["entry"] == champion and len(version.tags["data_manifest_sha256"]) == 64
    assert f"threshold {threshold:.4f}" in version.description and "ROC-AUC" in version.description


def test_predict_through_the_registry_uses_the_validation_threshold(project, tmp_path):
    champion = json.loads((project / "reports" / "summary.json").read_text())["champion"]
    threshold = _eval(project, champion)["threshold"]
    images = sorted((project / "images").rglob("*.png"))[:4]
    out = tmp_path / "registry.csv"
    result = run_in(project, "python", "-m", "inspectcnn.cli", "predict", "--model",
                    "models:/inspectcnn-champion@champion", *map(str, images), "--out", str(out))
    assert f"probability >= {threshold:.3f}" in result.stdout, result.stdout
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert all(r["in_distribution"] in ("true", "false") for r in rows)  # the registered model carries the score
    inside = [r for r in rows if r["in_distribution"] == "true"]
    assert [int(r["label"]) for r in inside] == [int(float(r["probability"]) >= threshold) for r in inside]
    assert all(r["label"] == "-1" and r["class"] == "unknown" for r in rows if r["in_distribution"] == "false")


def test_export_stage_writes_checked_files_and_the_model_card(project):
    export = json.loads((project / "reports" / "export.json").read_text())
    summary = json.loads((project / "reports" / "summary.json").read_text())
    assert export["champion"] == summary["champion"] and export["test_count"] == 16
    rows = export["formats"]
    assert {fmt for fmt, r in rows.items() if r["status"] == "ok"} == {
        "keras", "onnx", "onnx_int8", "openvino", "litert_float16", "litert_int8"}
    for fmt in ("onnx", "openvino"):
        assert rows[fmt]["parity_max"] < 1e-3
    for name in ("model.onnx", "model_int8.onnx", "model.xml", "model.bin", "model_float16.tflite", "model_int8.tflite",
                 "inference.json"):
        assert (project / "reports" / "export" / name).is_file(), name
    run_summary = run_in(project, "python", "-m", "inspectcnn.run_summary").stdout  # the end of `make run`
    assert "Export: 5 format(s) ok in reports/export/" in run_summary and "FAILED" not in run_summary
    card = (project / "reports" / "model_card.md").read_text()
    threshold = _eval(project, summary["champion"])["threshold"]
    for text in (f"Model card: {summary['champion']}", f"Threshold {threshold:.4f}", "## Known failure modes",
                 "| onnx | float32 |", "## Per-group results", "positive class"):
        assert text in card, text
    html = (project / "reports" / "report.html").read_text()
    assert "Deployment" in html and "model_int8.tflite" in html


def test_export_carries_the_out_of_distribution_score_in_the_spec_and_the_onnx_file(project):
    import numpy as np
    import onnxruntime

    export = json.loads((project / "reports" / "export.json").read_text())
    spec = json.loads((project / "reports" / "export" / "inference.json").read_text())
    ood = export["ood"]
    assert ood["method"] == "knn" and spec["ood"]["threshold"] == ood["threshold"] and ood["k"] == 10
    assert "validation" in ood["threshold_rule"] and ood["bank_size"] == 32  # the training split's cells
    assert np.load(project / "reports" / "export" / "ood_bank.npy").shape == (32, ood["dims"])
    checks = {c["set"]: c for c in ood["checks"]}
    assert set(checks) == {"test", "noise", "constant", "photographs", "rotated", "blurred"}
    assert checks["noise"]["flagged"] > 0.9 and checks["noise"]["roc_auc_vs_test"] > 0.9
    rows = export["formats"]
    assert rows["onnx"]["ood_output"] and rows["onnx"]["ood_parity_max"] < 1e-4
    assert not any(r.get("ood_output") for fmt, r in rows.items() if fmt != "onnx")
    session = onnxruntime.InferenceSession(str(project / "reports" / "export" / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["probability", "ood_score"]
    assert len(onnxruntime.InferenceSession(str(project / "reports" / "export" / "model_int8.onnx")).get_outputs()) == 1
    for page in ("report.html", "report.md"):
        assert "Out-of-distribution score" in (project / "reports" / page).read_text()


def test_predict_says_unknown_for_images_that_are_not_cells(project, tmp_path):
    from PIL import Image
    import numpy as np

    folder = tmp_path / "mixed"
    folder.mkdir()
    cells = sorted((project / "images").rglob("*.png"))[:4]
    for cell in cells:
        (folder / cell.name).write_bytes(cell.read_bytes())
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(folder / f"noise{i}.png")
    out = tmp_path / "mixed.csv"
    result = run_in(project, "python", "-m", "inspectcnn.cli", "predict", "--model",
                    str(project / "reports" / "export" / "model.onnx"), str(folder), "--out", str(out))
    with out.open() as handle:
        rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(handle)}
    assert list(next(iter(rows.values()))) == ["path", "probability", "label", "class", "ood_score", "in_distribution"]
    for i in range(3):
        row = rows[f"noise{i}.png"]
        assert row["class"] == "unknown" and row["label"] == "-1" and row["in_distribution"] == "false"
    unknown = sum(r["class"] == "unknown" for r in rows.values())
    assert "7 images scored: " in result.stdout and f" {unknown} unknown (" in result.stdout
    assert "unknown: out of distribution, score > " in result.stdout


def test_predict_reports_a_corrupt_file_and_scores_the_rest(project, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    images = sorted((project / "images" / "ok").glob("*.png"))[:3]
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "predictions.csv"
    result = run_in(project, "python", "-m", "inspectcnn.cli", "predict", "--model",
                    "models/lenet/model.keras", str(folder), "--out", str(out))
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in rows) == sorted(i.name for i in images)
    assert all(0 <= float(r["probability"]) <= 1 and r["label"] in ("0", "1") for r in rows)
    assert "broken.png" in result.stdout + result.stderr and "1 skipped" in result.stdout


def test_the_edge_student_is_distilled_with_keras_evaluated_against_its_teacher_exported_and_registered(project):
    """The distil stage trains one view through keras.distillation.Distiller (its losses in the history), keeps
    an epoch only if it beats the start on validation; evaluate_edge compares it with the champion on the same
    test cells and exports it; the registry serves exactly the evaluated student as @edge."""
    import mlflow
    import numpy as np

    from inspectcnn.data.dataset import load_split

    edge = project / "reports" / "edge"
    metrics = json.loads((edge / "metrics.json").read_text())
    champion = json.loads((project / "reports" / "champion.json").read_text())["champion"]
    assert metrics["teacher"] == champion and metrics["views"] == 1
    assert metrics["best_val_auc"] >= metrics["start_val_auc"] or not metrics["distilled"]
    with (edge / "history.csv").open() as handle:
        header = next(csv.reader(handle))
    assert {"distillation_loss", "student_loss", "val_auc"} <= set(header)
    evaluation = json.loads((edge / "eval.json").read_text())
    assert evaluation["tta"] == "none" and evaluation["cost"]["views"] == 1
    versus = evaluation["vs_teacher"]
    assert versus["teacher"] == champion
    teacher = _eval(project, champion)
    assert versus["roc_auc"]["difference"] == pytest.approx(evaluation["roc_auc"] - teacher["roc_auc"], abs=1e-4)
    assert versus["roc_auc"]["ci95"][0] <= versus["roc_auc"]["difference"] <= versus["roc_auc"]["ci95"][1]
    checks = json.loads((edge / "export.json").read_text())
    latencies = json.loads((edge / "export_run.json").read_text())["formats"]
    assert {f for f, r in checks["formats"].items() if r["status"] == "ok"} == {"keras", "onnx", "onnx_int8"}
    assert all(latencies[f]["latency_b1_ms"] > 0 for f in ("onnx", "onnx_int8"))
    assert (edge / "export" / "model_int8.onnx").is_file() and (edge / "export" / "inference.json").is_file()
    report = (project / "reports" / "report.md").read_text()
    assert "## The edge student" in report and "Latency budget: onnx_int8" in report
    registered = json.loads((project / "reports" / "registered.json").read_text())
    assert registered["edge"]["uri"] == "models:/inspectcnn-champion@edge"
    with (edge / "predictions.csv").open() as handle:
        expected = {r["id"]: float(r["probability"]) for r in csv.DictReader(handle)}
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/inspectcnn-champion@edge")
    size = model.metadata.get_input_schema().inputs[0].shape[1]
    data = load_split(project / "data" / "prepared", "test", image_size=size, batch_size=64, channels=1)
    probabilities = np.concatenate([model.predict(data[i][0])["probability"].to_numpy() for i in range(len(data))])
    assert max(abs(float(p) - expected[i]) for i, p in zip(data.ids, probabilities)) < 1e-4
    assert mlflow.MlflowClient().get_model_version_by_alias("inspectcnn-champion", "champion").version != \
        mlflow.MlflowClient().get_model_version_by_alias("inspectcnn-champion", "edge").version


def test_train_transfer_and_ensemble_never_open_the_test_split(project, tmp_path):
    """With the test shards gone, every stage that makes a choice (the distillation included) still runs; evaluation (the one reader
    of the test split) is the control that fails."""
    import shutil

    prepared = tmp_path / "prepared"
    shutil.copytree(project / "data" / "prepared", prepared)
    removed = sorted(prepared.glob("test-*.npy"))
    assert removed
    for shard in removed:
        shard.unlink()
    stages = (
        ("pipeline.train", "--name", "lenet", "--prepared", str(prepared), "--out", str(tmp_path / "lenet")),
        ("pipeline.transfer", "--name", "tiny_hed", "--prepared", str(prepared),
         "--out", str(tmp_path / "tiny_hed")),
        ("pipeline.ensemble", "--models", "models", "--val-predictions", "data/val_predictions",
         "--out", str(tmp_path / "ensemble")),
        ("pipeline.distil", "--prepared", str(prepared), "--out", str(tmp_path / "edge")),
    )
    for stage in stages:
        run_in(project, "python", "-m", *stage)  # raises with the output if the stage failed
    assert (tmp_path / "ensemble" / "model.keras").is_file() and (tmp_path / "edge" / "model.keras").is_file()
    control = run_in(project, "python", "-m", "pipeline.evaluate", "--name", "lenet", "--prepared",
                     str(prepared), "--model-dir", str(tmp_path / "lenet"), "--val-predictions",
                     str(tmp_path / "val.csv"), check=False)
    assert control.returncode != 0 and "test-00000.npy" in control.stderr


def test_mlflow_opens_on_the_training_runs_and_each_run_names_its_data(project):
    """The experiment is a model-training one (MLflow's UI opens on its runs); every training and
    evaluation run logged the prepared data (manifest digest, source) with its context."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("tiny")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'")
    digests = set()
    for run in runs:
        kind = run.data.tags.get("kind")
        if kind not in ("train", "transfer", "evaluate"):
            continue
        inputs = run.inputs.dataset_inputs
        assert len(inputs) == 1, (run.info.run_name, inputs)
        context = {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"]
        assert context == ("evaluation" if kind == "evaluate" else "training")
        if kind != "evaluate":
            assert run.data.params["data.positive_class"] == "defect"
        assert inputs[0].dataset.name == "folder-prepared-32px" and "data/prepared/manifest.csv" in inputs[0].dataset.source
        digests.add(inputs[0].dataset.digest)
    assert len(digests) == 1  # one prepared data set behind every run


def test_report_describes_this_data_with_its_health_and_error_gallery(project):
    """A folder data set: no ELPV context; the champion's worst errors with Grad-CAM, the data-health
    section (near-duplicates, per-class statistics, label-issue candidates), the class mapping."""
    html = (project / "reports" / "report.html").read_text()
    markdown = (project / "reports" / "report.md").read_text()
    for text in ("Published ELPV", "Measured recipes", "2,624"):
        assert text not in html and text not in markdown, text
    for text in ("Data health", "Near-duplicates across splits", "Per-class image statistics", "Label-issue candidates",
                 "Error gallery"):
        assert text in html, text
    assert re.search(r'alt="Error gallery [^"]+" src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', html) or \
        "makes no error on the test split" in html
    health = json.loads((project / "data" / "health.json").read_text())["label_issues"]
    assert health["images"] == 48 and health["splits"] == ["train", "val"]
    summary = json.loads((project / "data" / "prepare_summary.json").read_text())
    assert summary["health"]["near_duplicates"]["max_bits"] == 4 and summary["classes"] == ["ok", "defect"]


def test_report_html_is_a_valid_document_a_browser_renders_whole(project):
    """A DOM check of report.html: parsed by html5lib (the WHATWG algorithm browsers implement) in strict
    mode, every figure a decodable PNG, every table row as wide as its header, no template left unrendered."""
    import base64
    import io

    import html5lib
    from PIL import Image

    text = (project / "reports" / "report.html").read_text()
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    document = parser.parse(text)  # raises on any parse error (unclosed or misnested tags, stray text)
    assert document.find("body") is not None and document.find("head/title") is not None
    images = document.findall(".//img")
    assert len(images) >= 6
    for image in images:
        kind, _, data = image.get("src").partition(";base64,")
        assert kind == "data:image/png" and image.get("alt"), image.get("alt")
        with Image.open(io.BytesIO(base64.b64decode(data))) as png:
            png.verify()
    for table in document.findall(".//table"):
        rows = table.findall(".//tr")
        width = lambda row: sum(int(c.get("colspan", 1)) for c in row if c.tag in ("td", "th"))  # noqa: E731
        assert rows and all(width(row) == width(rows[0]) for row in rows), [width(r) for r in rows]
    body = "".join(document.find("body").itertext())
    for leftover in ("{{", "{%", "}}", "Undefined", " nan ", "None%"):
        assert leftover not in body, leftover
    headings = [h.text for h in document.findall(".//h2")]
    for heading in ("All models (sorted by test roc_auc; the champion was chosen on validation)",
                    "Deployment: the champion exported", "Data health",
                    "Error gallery: where the champion goes wrong", "Per-group results"):
        assert heading in headings, (heading, headings)


def test_make_ui_opens_a_browser_on_the_runs_table_with_the_project_runs(project):
    """`make ui`'s URL, in headless Chromium: the Runs table with the runs the pipeline logged (Dataset column),
    not MLflow's GenAI overview."""
    from mlflow.tracking import MlflowClient

    from browser import browser_page, mlflow_ui

    store = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("tiny")
    names = sorted({r.info.run_name for r in client.search_runs([experiment.experiment_id])})
    members = json.loads((project / "models" / "ensemble" / "metrics.json").read_text())["members"]
    # an ensemble of one member is that member: its evaluation is reused, no evaluate@ensemble run is logged
    expected = {"train@lenet", "transfer@tiny_hed", "evaluate@lenet", "ensemble"}
    assert expected | ({"evaluate@ensemble"} if len(members) > 1 else set()) <= set(names)
    with mlflow_ui(project, store) as (url, _), browser_page() as page:
        assert url.endswith(f"#/experiments/{experiment.experiment_id}?workflowType=machine_learning")
        page.goto(url)
        page.get_by_text("train@lenet", exact=True).first.wait_for(timeout=90_000)
        text = page.inner_text("body")
        missing = [name for name in names if name not in text]
        assert not missing, f"runs not in the table: {missing}"
        assert "Run Name" in text and "Dataset" in text and "folder-prepared-32px" in text
        assert re.search(r"\d+ matching runs", text)
        assert "Detect Issues" not in text  # the GenAI overview's page


def test_the_report_renders_in_a_browser_with_every_figure_shown_and_nothing_overflowing(project):
    from browser import LAYOUT_CHECK, browser_page

    for width in (1280, 800):
        with browser_page(width=width) as page:
            page.goto((project / "reports" / "report.html").as_uri())
            found = page.evaluate(LAYOUT_CHECK)
        assert len(found["images"]) >= 5
        empty = [image["alt"] for image in found["images"] if not image["natural"] or not image["shown"]]
        assert not empty, f"figures with no size at {width} px: {empty}"
        assert not found["overflowing"], f"at {width} px: " + "\n".join(found["overflowing"][:10])
    html = (project / "reports" / "report.html").read_text()
    assert "Exported to reports/export/ in every format asked for" in html  # the summary box


def test_the_python_examples_of_the_docs_run_on_this_project(project):
    """Every plain ```python block of README.md and docs/ runs as shown, in the project after `dvc repro` (the
    registry example of docs/deployment.md among them)."""
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    blocks = {f"{doc.name}:{n}": match.group(1)
              for doc in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
              for n, match in enumerate(re.finditer(r"^```python\n(.*?)^```", doc.read_text(), re.S | re.M))}
    assert "deployment.md:0" in blocks
    for where, code in blocks.items():
        result = run_in(project, sys.executable, "-c", code, check=False)
        assert result.returncode == 0, f"{where}:\n{code}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "probability" in run_in(project, sys.executable, "-c", blocks["deployment.md:0"]).stdout
