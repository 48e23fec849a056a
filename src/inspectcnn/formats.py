"""The model formats, in one registry shared by the export stage and by serving (``inspectcnn predict``).

An :class:`Engine` is a runtime: the file suffix it reads, the package that runs it, and how a file opens
behind one ``predict(float32 NHWC batch) -> probabilities`` call. A :class:`Format` is what the export stage
writes: its file name, precision, engine, the packages converting needs, and the function that converts
(written by the libraries that own each format: Keras 3's ``model.export``, ONNX Runtime's and the TFLite
converter's quantisers, NNCF). Adding a format is one :data:`FORMATS` entry (and its converter when no
existing one fits).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@contextmanager
def converting() -> Iterator[None]:
    """The block runs a converter with its own chatter held back: the native libraries' INFO lines and the
    deprecation warnings the converters raise on import (tf2onnx on NumPy 2, TFLite). Their real warnings
    and errors still come through."""
    from inspectcnn.backend import CONVERTER_NOISE, native_output_filtered

    with warnings.catch_warnings(), native_output_filtered(CONVERTER_NOISE):
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# --------------------------------------------------------------------------- engines (running a file)


def _open_keras(path: Path, tta: str = "none"):
    from inspectcnn import dihedral
    from inspectcnn.models.saving import load_model

    return dihedral.tta_model(load_model(path), tta).predict_on_batch


def _open_onnx(path: Path, tta: str = "none"):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    several = len(session.get_outputs()) > 1  # the probability, then the out-of-distribution score
    return lambda x: session.run(None, {name: x}) if several else session.run(None, {name: x})[0]


def _open_litert(path: Path, tta: str = "none"):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    shape = [None]

    def call(x):
        if shape[0] != x.shape:  # the batch dimension is dynamic: size the tensors for this batch
            interpreter.resize_tensor_input(source, list(x.shape))
            interpreter.allocate_tensors()
            shape[0] = x.shape
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()

    return call


def compile_openvino(path: Path):
    """An OpenVINO IR file compiled for the CPU at float32 inference precision: no silent bf16 on CPUs that have
    it (AMX), so what it computes does not depend on the CPU."""
    import openvino

    return openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def _open_openvino(path: Path, tta: str = "none"):
    compiled = compile_openvino(path)
    return lambda x: compiled(x)[0]


@dataclass(frozen=True)
class Engine:
    """A runtime: files ending in ``suffix`` open with ``open(path, tta)`` (``import_name`` must import)."""

    name: str
    suffix: str
    import_name: str
    package: str  # what pip installs
    open: Callable[..., Callable[[np.ndarray], Any]]

    def version(self) -> str:
        from importlib.metadata import version

        return f"{self.package} {version(self.package)}"


ENGINES: dict[str, Engine] = {e.name: e for e in (
    Engine("keras", ".keras", "keras", "keras", _open_keras),
    Engine("onnx", ".onnx", "onnxruntime", "onnxruntime", _open_onnx),
    Engine("litert", ".tflite", "ai_edge_litert", "ai-edge-litert", _open_litert),
    Engine("openvino", ".xml", "openvino", "openvino", _open_openvino),
)}


def engine_of(path: Path) -> Engine | None:
    suffix = Path(path).suffix.lower()
    return next((e for e in ENGINES.values() if e.suffix == suffix), None)


# --------------------------------------------------------------------------- converters (writing a file)


class UnconvertedOps(RuntimeError):
    """A converter that wrote a file with operations its runtime does not have (tf2onnx does)."""


def _check_onnx(path: Path) -> None:
    import onnx

    odd = sorted({node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node
                  if node.domain not in ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")
                  or (node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type))})
    if odd:
        raise UnconvertedOps(f"Unsupported ops: Counter({{{', '.join(repr(o) + ': 1' for o in odd)}}}) left as "
                             "nodes that no ONNX opset defines")


def batched_constant_matmuls(path: Path) -> list[str]:
    """The MatMul nodes of an ONNX file whose constant operand has more than 2 dimensions (a stack of matrices,
    as PaDiM's inverse covariance per position). ONNX Runtime cannot run them with per-channel int8 weights
    (QLinearMatMul: "weight zero point must be a scalar, 1D tensor of size 1, or last to second dimension is
    1"), so the int8 file leaves them in float32."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    ranks = {tensor.name: len(tensor.dims) for tensor in graph.initializer}
    return [node.name for node in graph.node
            if node.op_type == "MatMul" and any(ranks.get(name, 0) > 2 for name in node.input)]


def _quantize_onnx(source: Path, target: Path, calibration: np.ndarray, staging: Path) -> None:
    """ONNX Runtime's static quantisation: QDQ, int8 weights per channel, uint8 activations calibrated
    (min-max) on ``calibration``; the float input and output stay, and so do the products with a stack of
    constant matrices (:func:`batched_constant_matmuls`)."""
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name):
            self.items = iter([{name: image[None].astype(np.float32)} for image in calibration])

        def get_next(self):
            return next(self.items, None)

    name = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    prepared = staging / "preprocessed.onnx"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantiser logs each graph edit at INFO on the root logger ("Created a copy")
    try:
        quant_pre_process(str(source), str(prepared))
        quantize_static(str(prepared), str(target), Reader(name), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=batched_constant_matmuls(prepared))
    finally:
        root.setLevel(level)


def to_onnx(model, path: Path, calibration: np.ndarray, spec: dict, *, int8: bool = False) -> None:
    """Keras' ONNX export (tf2onnx); ``int8``: ONNX Runtime's static quantisation of the float file (this
    export's ``model.onnx`` when it is there, else one made for it). The spec goes into the file's props."""
    import onnx

    with tempfile.TemporaryDirectory() as staging:
        source = path
        if int8:
            source = path.with_name("model.onnx")  # the float file of this export when there is one
            if source.is_file():
                graph = onnx.load(str(source), load_external_data=False).graph
                if len(graph.output) > 1:
                    source = _probability_only(source, graph, Path(staging) / "model.onnx")
            else:
                source = Path(staging) / "model.onnx"
        if not source.is_file():
            model.export(str(source), format="onnx", verbose=False)
            _check_onnx(source)
        if int8:
            _quantize_onnx(source, path, calibration, Path(staging))
        proto = onnx.load(str(path))
        if len(proto.graph.output) == 2:  # the probability and the out-of-distribution score, named as such
            _rename_outputs(proto, ["probability", "ood_score"])
        onnx.helper.set_model_props(proto, {"inspectcnn.inference": json.dumps(spec),
                                            "threshold": str(spec["threshold"])})
        onnx.save(proto, str(path))


def _probability_only(source: Path, graph, target: Path) -> Path:
    """The part of a float ONNX file with more outputs (the probability and the out-of-distribution score)
    that computes its first output, the probability, as ``target`` (``onnx.utils.extract_model``: the same
    nodes and weights, the others left out): what the int8 file quantises, without converting again. ``graph``:
    the source's graph, already read."""
    import onnx.utils

    onnx.utils.extract_model(str(source), str(target), [graph.input[0].name], [graph.output[0].name])
    return target


def _rename_outputs(proto, names: list[str]) -> None:
    """Give the graph's outputs readable names (the exporter's are ``Identity:0``...), in every node that
    produces or reads them."""
    for output, name in zip(proto.graph.output, names):
        old = output.name
        for node in proto.graph.node:
            node.output[:] = [name if o == old else o for o in node.output]
            node.input[:] = [name if i == old else i for i in node.input]
        output.name = name


def to_openvino(model, path: Path, calibration: np.ndarray, spec: dict, *, int8: bool = False) -> None:
    """Keras' OpenVINO export; ``int8``: NNCF's post-training quantisation. The spec goes into rt_info."""
    import openvino

    model.export(str(path), format="openvino", verbose=False)
    ov_model = openvino.Core().read_model(str(path))
    if int8:
        import nncf

        ov_model = nncf.quantize(ov_model, nncf.Dataset(calibration[:, None].astype(np.float32)),
                                 subset_size=len(calibration))
    ov_model.set_rt_info(json.dumps(spec), ["inspectcnn", "inference"])
    with tempfile.TemporaryDirectory() as staging:  # the exporter's float32 file is replaced, not kept
        staged = Path(staging) / path.name
        openvino.save_model(ov_model, str(staged), compress_to_fp16=False)
        shutil.move(str(staged), path)
        shutil.move(str(staged.with_suffix(".bin")), path.with_suffix(".bin"))


def to_litert(model, path: Path, calibration: np.ndarray, spec: dict, *, precision: str = "float32") -> None:
    """Keras' LiteRT export through the TFLite converter: float32, float16 weights, or full-integer int8
    (every op int8, float32 input and output, calibrated on ``calibration``). Batch dimension dynamic."""
    import tensorflow as tf

    options: dict[str, Any] = {}
    if precision == "float16":
        options = {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_types": [tf.float16]}}
    elif precision == "int8":
        def representative():
            for image in calibration:
                yield [image[None].astype(np.float32)]

        options = {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative,
                   "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}}
    model.export(str(path), format="litert", verbose=False, **options)


@dataclass(frozen=True)
class Format:
    """One export format: ``file`` in the export folder, ``precision`` (what its check compares: parity for
    float formats, the accuracy drop for int8), its ``engine``, the packages converting needs under the
    tensorflow backend (``needs``), and ``convert(model, path, calibration, spec)``."""

    name: str
    file: str
    precision: str
    engine: str
    needs: tuple[str, ...]
    convert: Callable[..., None]
    auto: bool = True  # in export.formats: auto (when its packages are installed)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", "model.onnx", "float32", "onnx", ("tf2onnx", "onnx", "onnxruntime"), to_onnx),
    Format("onnx_int8", "model_int8.onnx", "int8", "onnx", ("tf2onnx", "onnx", "onnxruntime"),
           lambda *a: to_onnx(*a, int8=True)),
    Format("openvino", "model.xml", "float32", "openvino", ("openvino",), to_openvino),  # with model.bin
    # NNCF's OpenVINO int8 lost 0.13 test accuracy on the ELPV champion where ONNX Runtime's and LiteRT's int8
    # lost none (OpenVINO runs the int8 ONNX file directly); only when asked for by name
    Format("openvino_int8", "model_int8.xml", "int8", "openvino", ("openvino", "nncf"),
           lambda *a: to_openvino(*a, int8=True), auto=False),
    # the float16 file runs on the same interpreter at half the size; only when asked for by name
    Format("litert", "model.tflite", "float32", "litert", ("ai_edge_litert",), to_litert, auto=False),
    Format("litert_float16", "model_float16.tflite", "float16", "litert", ("ai_edge_litert",),
           lambda *a: to_litert(*a, precision="float16")),
    Format("litert_int8", "model_int8.tflite", "int8", "litert", ("ai_edge_litert",),
           lambda *a: to_litert(*a, precision="int8")),
)}


def backend_needs(fmt: Format, backend: str) -> list[str] | str:
    """The packages exporting ``fmt`` needs under the Keras ``backend``, or why it cannot be done there."""
    needs = list(fmt.needs)
    if fmt.engine == "litert":
        if backend == "jax":
            return "the LiteRT exporter of Keras runs under the tensorflow or torch backend, not jax"
        needs.append("tensorflow" if backend == "tensorflow" else "litert_torch")
    if fmt.engine == "onnx" and backend != "tensorflow":
        needs = ["onnx", "onnxruntime"] + (["tensorflow", "tf2onnx"] if backend == "jax" else ["onnxscript"])
    if fmt.engine == "openvino" and backend == "jax":  # Keras traces a JAX model through TensorFlow
        needs.append("tensorflow")
    return needs


def file_size(path: Path) -> int:
    """Bytes on disk; an OpenVINO model is its .xml and .bin together."""
    size = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        size += path.with_suffix(".bin").stat().st_size
    return size


# --------------------------------------------------------------------------- naming what failed to convert


def failed_ops(text: str) -> list[str]:
    """Operation types a converter's message says it could not convert (tf2onnx, TFLite, OpenVINO)."""
    ops: set[str] = set()
    for pattern in (r"Unsupported ops?:?\s*Counter\(\{([^}]*)\}", r"conversion rule found for operations?: ([\w, ]+)",
                    r"'tf\.(\w+)' op is neither", r"fused\[\"(\w+):\"", r"unsupported (?:custom )?ops?: ([\w, ]+)"):
        for match in re.findall(pattern, text):
            ops.update(re.findall(r"'(\w+)'", match) or [op.strip() for op in match.split(",") if op.strip()])
    return sorted(ops)


def layers_using(model, ops: list[str]) -> list[str]:
    """The Keras layers whose TensorFlow graph holds any of ``ops`` (names of the model's layers)."""
    if not ops:
        return []
    try:
        import tensorflow as tf

        shape = (1, *(int(d) for d in model.input.shape[1:]))
        graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(
            tf.TensorSpec(shape, tf.float32)).graph.as_graph_def()
    except Exception:  # noqa: BLE001 - naming the layer is a help, not a requirement
        return []
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    paths = [n.name for n in nodes if n.op in ops]
    known = {layer.name for layer in _all_layers(model)}
    found = []
    for path in paths:
        for part in path.split("/"):
            name = re.sub(r"_\d+$", "", part)
            if part in known or name in known:
                hit = part if part in known else name
                if hit not in found and hit != model.name:
                    found.append(hit)
    return found


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def conversion_error(fmt: str, error: BaseException, model=None) -> str:
    """One readable line: the format, the operations the converter named and the layers that hold them,
    then the start of the converter's own message."""
    text = f"{type(error).__name__}: {error}"
    ops = failed_ops(text)
    layers = layers_using(model, ops) if model is not None else []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = (f"unsupported op {', '.join(ops)}" + (f" in layer {', '.join(layers)}" if layers else "") + "; "
             if ops else "")
    return f"{fmt}: conversion failed ({named}{' | '.join(lines[:3])[:500]})"
