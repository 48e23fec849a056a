"""params.yaml validation: every error names the key and, where fixed, the allowed values."""

from __future__ import annotations

import pytest
import yaml

from inspectcnn.config import ConfigError, Params, load_params, parse_params

from helpers import REPO


def error_of(raw: dict, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        parse_params(raw, **kwargs)
    return str(info.value)


def test_repository_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "elpv"
    assert params.data.split.train + params.data.split.val + params.data.split.test == pytest.approx(1)


def test_defaults_are_frozen():
    params = parse_params({})
    assert isinstance(params, Params)
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        params.seed = 3  # type: ignore[misc]


def test_unknown_key_is_named():
    message = error_of({"data": {"sorce": "elpv"}})
    assert "data.sorce" in message and "unknown key" in message


def test_unknown_top_level_section_is_named():
    assert "trian" in error_of({"trian": {}})


def test_wrong_type_is_named_with_the_value():
    message = error_of({"train": {"epochs": "ten"}})
    assert "train.epochs" in message and "valid integer" in message and "'ten'" in message


def test_bool_is_not_an_int_and_int_is_not_a_bool():
    assert "train.epochs" in error_of({"train": {"epochs": True}})
    assert "train.cache" in error_of({"train": {"cache": 1}})


def test_negative_epochs_rejected():
    message = error_of({"train": {"epochs": -3}})
    assert "train.epochs" in message and "greater than or equal to 1" in message


def test_split_must_sum_to_one():
    message = error_of({"data": {"split": {"train": 0.7, "val": 0.2, "test": 0.2}}})
    assert "data.split" in message and "must be 1" in message


def test_unknown_source_lists_allowed_values():
    message = error_of({"data": {"source": "s3"}})
    assert "data.source" in message and "'elpv', 'folder' or 'csv'" in message


def test_user_source_needs_a_path():
    assert "data.path" in error_of({"data": {"source": "folder"}})


def test_on_bad_image_choices():
    assert "'fail' or 'skip'" in error_of({"data": {"on_bad_image": "ignore"}})


def test_model_entry_overrides_train_defaults():
    params = parse_params({"train": {"epochs": 7}, "models": {"lenet": {"learning_rate": 0.01}}})
    config = params.model("lenet")
    assert (config.arch, config.epochs, config.learning_rate) == ("lenet", 7, 0.01)


def test_model_entry_typo_is_named():
    message = error_of({"models": {"lenet": {"lerning_rate": 0.1}}})
    assert "models.lenet.lerning_rate" in message and "unknown key" in message


def test_model_entry_wrong_type_is_named():
    assert "models.lenet.batch_size" in error_of({"models": {"lenet": {"batch_size": 0.5}}})


def test_invalid_yaml_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


def test_params_file_must_be_a_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_params(path)


def test_models_and_transfer_entries_must_not_share_names():
    message = error_of({"models": {"lenet": {}}, "transfer": {"lenet": {}}})
    assert "share entry names ['lenet']" in message


def test_gpu_params_are_valid_and_use_the_measured_transfer_recipe():
    import yaml

    from helpers import REPO
    from inspectcnn.config import parse_params
    from pipeline.gpu_params import gpu_params

    raw = gpu_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    params = parse_params(raw)
    lite = params.transfer["lite0"]
    assert (lite.image_size, lite.finetune_layer, lite.cache_mode, lite.augment.dihedral) == (224, "stem_conv", "none", True)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["transfer"]["vgg16_hed"] = {"backbone": "vgg16", "weights": "hed-vgg16", "image_size": 128}
    vgg = parse_params(gpu_params(raw)).transfer["vgg16_hed"]
    assert (vgg.image_size, vgg.finetune_layer, vgg.augment.dihedral) == (224, "block1_conv1", True)


def test_the_control_in_the_params_comment_is_a_valid_entry():
    """params.yaml shows how to add a no-pretraining control; what it shows must parse."""
    import yaml

    from helpers import REPO
    from inspectcnn.config import parse_params

    text = (REPO / "params.yaml").read_text()
    lines = [line.strip()[1:].strip() for line in text.splitlines() if line.strip().startswith("#")]
    start = next(i for i, line in enumerate(lines) if line.startswith("lite0_random:"))
    entry = " ".join(lines[start:start + 3])
    raw = yaml.safe_load(text)
    raw["transfer"].update(yaml.safe_load(entry))
    control = parse_params(raw).transfer["lite0_random"]
    assert (control.weights, control.image_size, control.finetune_layer) == ("none", 224, "stem_conv")


@pytest.mark.parametrize("section, message", [
    ({"registry_name": "team/champion"}, "a registered model name is 1-100 letters"),
    ({"registry_name": ""}, "a registered model name is 1-100 letters"),
    ({"alias": "latest"}, "MLflow's own version references"),
    ({"alias": "v2"}, "MLflow's own version references"),
    ({"alias": "my alias"}, "an alias is 1-64 letters"),
])
def test_a_bad_registry_name_or_alias_is_a_user_error_naming_the_key(section, message):
    from inspectcnn.config import ConfigError
    from inspectcnn.errors import UserError

    with pytest.raises(ConfigError) as raised:
        parse_params({"register": section})
    key = next(iter(section))
    assert isinstance(raised.value, UserError)
    assert f"register.{key}" in str(raised.value) and message in str(raised.value)


def test_the_register_section_reads_as_params_registry():
    params = parse_params({"register": {"registry_name": "line-7.champion", "alias": "production"}})
    assert (params.registry.registry_name, params.registry.alias) == ("line-7.champion", "production")
    assert parse_params({}).registry.registry_name == "inspectcnn-champion"


def test_the_edge_student_must_be_an_entry_and_its_alias_distinct_from_the_champions():
    base = {"transfer": {"lite": {"backbone": "efficientnet_lite0", "weights": "imagenet-lite"}},
            "models": {"lenet": {}}}
    assert parse_params({**base, "edge": {"student": "lite"}}).edge.student == "lite"
    with pytest.raises(ConfigError, match=r"edge.student: 'vgg99' is not an entry of transfer: or models: "
                                          r"\(entries: \['lenet', 'lite'\]\), or auto"):
        parse_params({**base, "edge": {"student": "vgg99"}})
    with pytest.raises(ConfigError, match="alias and edge_alias are both 'champion'"):
        parse_params({"register": {"edge_alias": "champion"}})
    with pytest.raises(ConfigError) as caught:
        parse_params({"edge": {"student_loss_weight": 1.5, "formats": ["onnx", "onnx"], "epochs": 0}})
    message = str(caught.value)
    assert "edge.student_loss_weight" in message and "edge.formats: name each format once" in message
    assert "edge.epochs" in message


def test_the_edge_student_starts_from_the_champion_when_it_is_one_network_else_the_first_transfer_entry():
    from inspectcnn.distil import student_entry

    params = parse_params({"transfer": {"lite": {"backbone": "efficientnet_lite0", "weights": "imagenet-lite"}},
                           "models": {"lenet": {}}})
    assert student_entry(params, "lenet") == "lenet"
    assert student_entry(params, "lite") == "lite"
    assert student_entry(params, "ensemble") == "lite"  # several networks: no single one to start from
    assert student_entry(parse_params({"models": {"lenet": {}}}), "ensemble") == "lenet"
    with pytest.raises(ConfigError, match="auto needs a transfer: or models: entry"):
        student_entry(parse_params({}), "ensemble")
