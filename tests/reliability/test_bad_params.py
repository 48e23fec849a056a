"""Bad params: each mistake is named by its key, with what to do, before any data or model work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inspectcnn.config import ConfigError, parse_params
from inspectcnn.data.store import read_meta
from inspectcnn.models import check_architectures
from inspectcnn.training import TrainingError, check_before_training

from helpers import REPO

pytestmark = pytest.mark.reliability


def error_of(raw: dict, check_models: bool = True) -> str:
    with pytest.raises(ConfigError) as info:
        params = parse_params(raw)
        if check_models:
            check_architectures(params)
    return str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"models": {"resnet9000": {}}}, ["models.resnet9000.arch", "resnet18", "lenet"]),
        ({"models": {"x": {"arch": "vgg17"}}}, ["models.x.arch", "vgg16"]),
        ({"transfer": {"x": {"backbone": "alexnet"}}}, ["transfer.x.backbone", "vgg16"]),
        ({"transfer": {"x": {"backbone": "resnet50", "weights": "hed-vgg16"}}}, ["hed-vgg16 is a VGG-16 base"]),
        ({"models": {"lenet": {"batch_size": "32"}}}, ["models.lenet.batch_size", "'32'"]),
        ({"train": {"epochs": 2.5}}, ["train.epochs"]),
        ({"data": {"split": {"train": 1.0, "val": 0.0, "test": 0.0}}}, ["data.split", "empty split"]),
        ({"data": {"split": {"train": 0.7, "val": 0.2, "test": 0.2}}}, ["data.split"]),
        ({"transfer": {"x": {"cache_features": True, "augment": {"flip": "horizontal", "brightness": 0.2}}}},
         ["transfer.x", "cache_features: true conflicts with augmentation"]),
        ({"mlflow": {"required": "yes"}}, ["mlflow.required"]),
    ],
    ids=["unknown-arch", "unknown-arch-key", "unknown-backbone", "weights-backbone", "wrong-type",
         "float-epochs", "empty-split", "split-sum", "cache-vs-augment", "bool-type"],
)
def test_bad_params_name_the_key(raw, expected):
    message = error_of(raw, check_models="models" in raw)
    for text in expected:
        assert text in message


@pytest.fixture(scope="module")
def meta(tmp_path_factory):
    from helpers import tiny_prepared

    return read_meta(tiny_prepared(tmp_path_factory.mktemp("data")))


def tiny(**overrides):
    return parse_params({"models": {"x": {"arch": "lenet", "image_size": 24, "batch_size": 8, **overrides}}}).model("x")


def test_batch_larger_than_training_split(meta):
    with pytest.raises(TrainingError, match=r"models.x.batch_size: 999 is larger than the training split \(33"):
        check_before_training("x", tiny(batch_size=999), meta)


def test_input_too_small_for_the_architecture(meta):
    with pytest.raises(TrainingError, match=r"models.x.image_size: .*at least 63x63"):
        check_before_training("x", tiny(arch="alexnet", image_size=24), meta)


def test_rgb_model_input_from_grayscale_is_allowed_but_not_the_reverse(meta):
    assert check_before_training("x", tiny(channels=3), meta) == 3


def test_stage_exits_2_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("models:\n  lenet: {learning_rate: fast}\n")
    result = subprocess.run([sys.executable, "-m", "pipeline.train", "--name", "lenet", "--params", str(bad)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert "models.lenet.learning_rate" in result.stderr and "'fast'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_stage_entry_is_named_with_the_known_ones():
    params = parse_params({"models": {"lenet": {}}, "transfer": {"hed": {}}})
    with pytest.raises(ConfigError, match=r"transfer.lenet no such entry in params.yaml; entries: \['hed'\]"):
        params.transfer_config("lenet")
    with pytest.raises(ConfigError, match=r"models.hed no such entry"):
        params.model("hed")
    with pytest.raises(ConfigError, match=r"nope: not an entry of models:, transfer:, anomaly: or the ensemble"):
        params.check_entry("nope")
    assert params.check_entry("hed") == "hed"
