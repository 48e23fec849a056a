"""Untrusted files and secrets: safe-mode model loading, local-only UI, no credentials, no path escapes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from inspectcnn.models.saving import UnsafeModelError, load_model

from helpers import REPO, write_image

pytestmark = pytest.mark.reliability


def lambda_model(path):
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(outputs)))
    model.save(path)
    return path


def test_model_needing_unsafe_deserialization_is_refused_with_an_explanation(tmp_path):
    path = lambda_model(tmp_path / "lambda.keras")
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "safe_mode=True" in message and "Lambda" in message


def test_predict_refuses_an_unsafe_model_with_exit_2(tmp_path):
    path = lambda_model(tmp_path / "lambda.keras")
    write_image(tmp_path / "images" / "a.png", np.random.default_rng(0), size=(8, 8))
    command = str(Path(sys.executable).parent / "inspectcnn")
    result = subprocess.run([command, "predict", "--model", str(path), str(tmp_path / "images"), "--out",
                             str(tmp_path / "p.csv")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "refused to load" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "p.csv").exists()


def test_project_models_load_in_safe_mode(tmp_path):
    from inspectcnn.models import build_model

    model = build_model("googlenet", (32, 32, 1), width=0.25)
    model.save(tmp_path / "g.keras")
    assert load_model(tmp_path / "g.keras").count_params() == model.count_params()


def test_mlflow_ui_binds_to_localhost_unless_told_otherwise():
    from inspectcnn.ui import server_command

    default = subprocess.run(["make", "-n", "ui"], cwd=REPO, capture_output=True, text=True).stdout
    assert re.search(r"inspectcnn\.ui .*--host 127\.0\.0\.1\b", default)
    other = subprocess.run(["make", "-n", "ui", "HOST=0.0.0.0"], cwd=REPO, capture_output=True, text=True).stdout
    assert re.search(r"inspectcnn\.ui .*--host 0\.0\.0\.0\b", other)
    command, _ = server_command("sqlite:///x.db", "127.0.0.1", 5000)  # and the server it starts binds there
    assert command[command.index("--host") + 1] == "127.0.0.1"


def test_credentials_in_the_tracking_uri_are_redacted():
    from inspectcnn.tracking import redact

    secret = "pa" + "ss"
    assert redact(f"https://user:{secret}@mlflow.example.com:8443/api") == "https://***@mlflow.example.com:8443/api"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


SECRET_PATTERNS = {
    "AWS access key": r"AKIA[0-9A-Z]{16}",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "GitHub token": r"gh[pousr]_[A-Za-z0-9]{30,}",
    "Slack token": r"xox[abpr]-[A-Za-z0-9-]{10,}",
    "password in a URL": r"[a-z+]+://[^/\s:@'\"{}]+:[^/\s@'\"{}*]+@",
}


def test_no_credentials_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in files:
        path = REPO / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_text(errors="ignore")
        found += [f"{name}: {kind}" for kind, pattern in SECRET_PATTERNS.items() if re.search(pattern, text)]
    assert not found


def test_predict_does_not_follow_links_out_of_the_given_folder(tmp_path):
    from inspectcnn.cli import collect_images

    rng = np.random.default_rng(0)
    inside = write_image(tmp_path / "given" / "ok.png", rng)
    outside = write_image(tmp_path / "private" / "secret.png", rng)
    (tmp_path / "given" / "link.png").symlink_to(outside)
    (tmp_path / "given" / "linked_dir").symlink_to(outside.parent, target_is_directory=True)
    found, problems = collect_images([str(tmp_path / "given")])
    assert found == [inside]
    assert any("link.png: points outside" in p for p in problems)
    assert all("secret.png" not in str(path) for path in found)
