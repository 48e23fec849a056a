"""params.yaml's backend: read before Keras loads, validated with the other params, refused once too late."""

from __future__ import annotations

import os
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
    code = "import pipeline.evaluate, keras; print(keras.backend.backend())"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": f"{REPO / 'src'}:{REPO}", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "jax"


def test_tensorflow_start_up_noise_is_held_back_and_real_lines_still_show(tmp_path):
    """A stand-in TensorFlow that prints, from its native layer (fd 2), the start-up lines of a CPU machine
    and one real error: the noise is held back, the error printed."""
    import subprocess
    import sys

    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n'\n"
        "            b'I0000 00:00:1 port.cc:153] oneDNN custom operations are on. You may see...\\n'\n"
        "            b'I0000 00:00:1 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\\n')\n"
        "class config:\n"
        "    @staticmethod\n"
        "    def list_physical_devices(kind):\n"
        "        os.write(2, b'E0000 00:00:1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error (303)\\n'\n"
        "                    b'E0000 00:00:1 something.cc:1] a real problem the user must see\\n')\n"
        "        return []\n")
    code = "from inspectcnn import backend; backend.quiet_tensorflow_start(); print('started')"
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("INSPECTCNN_TF_NOISE", "INSPECTCNN_ASSUME_GPU")}
    env["PYTHONPATH"] = f"{tmp_path}:{env.get('PYTHONPATH', '')}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "started"
    assert "a real problem the user must see" in result.stderr
    for noise in ("absl::InitializeLog", "oneDNN", "cuInit", "Could not find cuda drivers"):
        assert noise not in result.stderr, noise
    loud = code + "; import tensorflow; tensorflow.config.list_physical_devices('GPU')"
    shown = subprocess.run([sys.executable, "-c", loud], capture_output=True, text=True,
                           env={**env, "INSPECTCNN_TF_NOISE": "1"}, check=True)
    assert "cuInit" in shown.stderr and "absl::InitializeLog" in shown.stderr  # INSPECTCNN_TF_NOISE=1: all shown


def test_native_converter_lines_are_held_back_and_a_real_line_still_shows():
    code = """
import os, sys
from inspectcnn.backend import CONVERTER_NOISE, native_output_filtered
with native_output_filtered(CONVERTER_NOISE):
    os.write(1, b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32\\n")
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
    os.write(2, b"E0000 a real converter error\\n")
    print("python's own line")
print("after")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "INSPECTCNN_TF_NOISE": ""})
    assert result.stdout.splitlines() == ["python's own line", "after"]
    assert result.stderr.splitlines() == ["E0000 a real converter error"]
