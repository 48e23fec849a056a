"""params.yaml's backend: read before Keras loads, validated with the other params, refused once too late."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO
from inspectcnn import backend
from inspectcnn.config import ConfigError, parse_params


def test_the_backend_comes_from_the_params_file_named_on_the_command_line(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("seed: 1\nbackend: jax\n")
    assert backend.params_path(["--name", "x", "--params", str(params)]) == str(params)
    assert backend.params_path([f"--params={params}"]) == str(params)
    assert backend.params_path(["--name", "x"]) == "params.yaml"
    assert backend.from_params(params) == "jax"
    assert backend.from_params(tmp_path / "missing.yaml") == "tensorflow"


def test_an_unknown_backend_is_a_params_error_naming_the_key():
    with pytest.raises(ConfigError, match="backend"):
        parse_params({"backend": "mxnet"})
    assert parse_params({"backend": "torch"}).backend == "torch"


def test_asking_for_another_backend_once_keras_is_loaded_is_refused():
    import keras  # noqa: F401 - this test process runs TensorFlow

    with pytest.raises(backend.BackendError, match="already imported under tensorflow"):
        backend.apply("jax")
    with pytest.raises(ValueError, match="not one of"):
        backend.apply("mxnet")


def test_a_stage_module_runs_under_the_params_backend(tmp_path):
    """Importing a stage applies params.yaml's backend before the stage's own imports load Keras."""
    pytest.importorskip("jax")
    (tmp_path / "params.yaml").write_text("backend: jax\n")
    code = "import inspectcnn.stages.evaluate, keras; print(keras.backend.backend())"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "jax"
