"""Where the pipeline's files live, relative to the repository root (mirrored in dvc.yaml)."""

from pathlib import Path

PREPARED = Path("data/prepared")
PREPARE_SUMMARY = Path("data/prepare_summary.json")
MODELS = Path("models")
# Every entry's validation probabilities (written by its evaluate stage), what the ensemble chooses on:
# one folder, so that the ensemble stage can depend on all of them without naming each entry.
VAL_PREDICTIONS = Path("data/val_predictions")
REPORTS = Path("reports")


def model_dir(name: str) -> Path:
    """Outputs of one train/transfer entry: model.keras, history.csv, metrics.json."""
    return MODELS / name
CHAMPION = REPORTS / "champion.json"  # the champion, chosen on validation (champion stage)
EXPORT = REPORTS / "export"  # the champion as deployable files (export stage)
EXPORT_METRICS = REPORTS / "export.json"
MODEL_CARD = REPORTS / "model_card.md"
HEALTH = Path("data/health.json")  # label-issue candidates (health stage)
