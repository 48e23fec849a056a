"""CONTRIBUTING.md's recipes, done as it tells a contributor to do them: on a copy of the package, its code
blocks written into the files it names, then the new architecture, export format and backbone used the way
the pipeline uses them (in a fresh interpreter, so the registries here stay as they are)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUIDE = (REPO / "CONTRIBUTING.md").read_text()


def block(kind: str, target: str) -> str:
    """The ``python kind=target`` code block of CONTRIBUTING.md."""
    found = re.search(rf"^```python {kind}={re.escape(target)}\n(.*?)^```", GUIDE, re.S | re.M)
    assert found, f"CONTRIBUTING.md has no block `python {kind}={target}`"
    return found.group(1)


def insert_after(path: Path, anchor: str, text: str) -> None:
    source = path.read_text()
    assert anchor in source, f"{path.name} lacks the line CONTRIBUTING.md names: {anchor!r}"
    path.write_text(source.replace(anchor, anchor + "\n" + text.rstrip("\n"), 1))


@pytest.fixture
def package(tmp_path) -> Path:
    """A copy of src/ to change as a contributor would."""
    shutil.copytree(REPO / "src" / "inspectcnn", tmp_path / "src" / "inspectcnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "src"


def run_python(package: Path, code: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(package), "TF_CPP_MIN_LOG_LEVEL": "3"}
    found = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                           cwd=cwd, timeout=600)
    assert found.returncode == 0, found.stdout[-3000:] + found.stderr[-3000:]
    return found.stdout


def test_adding_an_architecture_as_contributing_says(package, tmp_path):
    models = package / "inspectcnn" / "models"
    (models / "mynet.py").write_text(block("file", "src/inspectcnn/models/mynet.py"))
    init = models / "__init__.py"
    line = next(l for l in init.read_text().splitlines() if l.startswith("from inspectcnn.models import lenet"))
    init.write_text(init.read_text().replace(line, line.replace("densenet  #", "densenet, mynet  #")))
    out = run_python(package, """
        import keras, numpy as np
        from inspectcnn.config import parse_params
        from inspectcnn.models import build_model, check_architectures, list_models
        assert list_models()[-1] == "mynet", list_models()
        params = parse_params({"models": {"mynet": {"width": 1.0}}})
        check_architectures(params)                      # what the train stage checks first
        model = build_model("mynet", (64, 64, 1), width=params.model("mynet").width)
        assert model.get_layer("features") is not None and tuple(model.output.shape) == (None, 1)
        model.save("mynet.keras")
        loaded = keras.saving.load_model("mynet.keras", safe_mode=True)
        x = np.random.default_rng(0).random((2, 64, 64, 1)).astype("float32")
        assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
        print("mynet ok", model.count_params())
    """, tmp_path)
    assert "mynet ok" in out


def test_adding_an_export_format_as_contributing_says(package, tmp_path):
    table = package / "inspectcnn" / "formats.py"
    source = table.read_text()
    start = source.index("FORMATS: dict[str, Format] = {f.name: f for f in (")
    end = source.index("\n)}", start)  # the end of the table, where CONTRIBUTING.md says the row goes
    table.write_text(source[:end] + "\n" + block("row", "src/inspectcnn/formats.py").rstrip("\n") + source[end:])
    sections = package / "inspectcnn" / "config" / "sections.py"
    source = sections.read_text()
    names = re.search(r'^EXPORT_FORMATS = \((.*)\)$', source, re.M)
    sections.write_text(source.replace(names.group(0), f'EXPORT_FORMATS = ({names.group(1)}, "onnx_copy")'))
    out = run_python(package, """
        from pathlib import Path
        import keras, numpy as np
        from inspectcnn import formats, serving
        from inspectcnn.config import EXPORT_FORMATS, parse_params
        assert tuple(formats.FORMATS) == EXPORT_FORMATS  # as tests/test_serving.py asserts
        params = parse_params({"export": {"formats": ["onnx", "onnx_copy"]}})
        inputs = keras.Input((16, 16, 1))
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
        batch = np.random.default_rng(0).random((3, 16, 16, 1)).astype("float32")
        expected = model.predict(batch, verbose=0).ravel()  # Keras exports a model that has been called
        fmt = formats.FORMATS["onnx_copy"]
        path = Path(fmt.file)
        fmt.convert(model, path, np.zeros((4, 16, 16, 1), "float32"), {"threshold": 0.5})
        runner = serving.open_runner(path)                # as inspectcnn predict opens it
        assert runner.format == "onnx"
        assert np.allclose(runner.predict(batch), expected, atol=1e-5)
        print("onnx_copy ok", params.export.formats)
    """, tmp_path)
    assert "onnx_copy ok" in out


def test_adding_a_backbone_as_contributing_says(package, tmp_path):
    insert_after(package / "inspectcnn" / "backbones.py", "BACKBONES: dict[str, Backbone] = {",
                 block("row", "src/inspectcnn/backbones.py"))
    out = run_python(package, """
        import numpy as np
        from inspectcnn.config import parse_params
        from inspectcnn.transfer import build_transfer_model
        params = parse_params({"transfer": {"small": {"backbone": "mobilenet_v3_small", "weights": "none",
                                                      "image_size": 96, "head": []}}})
        config = params.transfer_config("small")
        model = build_transfer_model(config, channels=1)
        backbone = model.get_layer("backbone")
        assert config.finetune_layer in [layer.name for layer in backbone.layers]
        x = np.random.default_rng(0).random((2, 96, 96, 1)).astype("float32")
        p = model.predict(x, verbose=0)
        assert p.shape == (2, 1) and np.all((p >= 0) & (p <= 1))
        print("mobilenet_v3_small ok")
    """, tmp_path)
    assert "mobilenet_v3_small ok" in out
