"""Matplotlib figures shared by MLflow logging and the report (headless backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def history_figure(rows: list[dict], title: str = ""):
    """Loss and validation AUC/accuracy per epoch from history rows (as in history.csv)."""
    epochs = [int(r["epoch"]) for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, style in (("loss", "-"), ("val_loss", "--")):
        if rows and key in rows[0]:
            left.plot(epochs, [float(r[key]) for r in rows], style, label=key)
    for key in ("auc", "val_auc", "val_accuracy"):
        if rows and key in rows[0]:
            right.plot(epochs, [float(r[key]) for r in rows], label=key)
    left.set(xlabel="epoch", ylabel="loss")
    right.set(xlabel="epoch", ylabel="metric", ylim=(0.0, 1.0))
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def close(figure) -> None:
    plt.close(figure)
