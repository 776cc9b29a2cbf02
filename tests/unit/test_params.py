from __future__ import annotations

import copy
import re

import pytest
import yaml

from stages.errors import UserError
from stages.params import EarlyStopping, TrainParams, load_params, parse_params
from tests.helpers import ROOT, default_params


def test_project_params_load_with_reference_values():
    params = load_params(ROOT / "params.yaml")
    assert params.data.features == ("x",)
    assert params.models["linear"].lr == 0.07
    assert params.models["mlp"].hidden == (10,)
    assert params.models["mlp"].batch_size == 0


def test_optional_keys_take_defaults():
    raw = {
        "data": {"path": "a.csv", "features": ["a", "b"], "target": "c"},
        "train": {},
        "models": {"m": {"kind": "mlp", "hidden": [4, 3], "lr": 0.1, "epochs": 5}},
    }
    params = parse_params(raw)
    assert params.data.test_size == 0.0 and params.data.standardize is False
    assert params.train.seed == 0 and params.train.log_every == 100
    assert params.train.device == "cpu" and params.train.dtype == "float32"  # identical bits on every machine
    assert params.models["m"].activation == "tanh"


@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("0.001", 0.001), ("1.0e-3", 0.001), ("2", 2.0)])
def test_lr_spellings_that_yaml_writers_produce_load_as_numbers(text, value):
    raw = yaml.safe_load(f"lr: {text}")
    params = default_params()
    params["models"]["mlp"]["lr"] = raw["lr"]
    assert parse_params(params).models["mlp"].lr == value


def _mutate(path: str, value):
    params = copy.deepcopy(default_params())
    *parents, leaf = path.split(".")
    node = params
    for key in parents:
        node = node[key]
    node[leaf] = value
    return params


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("models.mlp.lr", 0, "models.mlp.lr must be > 0, got 0"),
        ("models.mlp.lr", "fast", "models.mlp.lr must be a finite number, got 'fast'"),
        ("models.mlp.epochs", 0, "models.mlp.epochs must be >= 1"),
        ("models.mlp.epochs", 10.5, "models.mlp.epochs must be an integer"),
        ("models.mlp.hidden", [10, 0], "models.mlp.hidden[1] must be >= 1"),
        ("models.mlp.activation", "gelu", "models.mlp.activation must be one of tanh, relu, sigmoid"),
        ("models.linear.solver", "sgd", "models.linear.solver must be one of adam"),
        ("models.mlp.batch_size", -1, "models.mlp.batch_size must be >= 0"),
        ("data.test_size", 1.0, "data.test_size must be in [0, 1)"),
        ("data.standardize", "yes", "data.standardize must be true or false"),
        ("data.features", "x", "data.features must be a non-empty list of column names"),
        ("data.features", [1], "data.features[0] must be a string, got the number 1; put it in quotes: '1'"),
        ("data.target", 2.5, "data.target must be a string, got the number 2.5; put it in quotes: '2.5'"),
        ("data.target", "x", "data.target 'x' is also listed in data.features"),
        ("models.mlp.epoch", 5, "unknown key models.mlp.epoch; did you mean models.mlp.epochs?"),
        ("train.sede", 1, "unknown key train.sede; did you mean train.seed?"),
        ("train.seed", 2**70, "train.seed must be <= 9223372036854775807, got 1180591620717411303424"),
        ("data.split_seed", -1, "data.split_seed must be >= 0, got -1"),
    ],
)
def test_bad_value_names_the_dotted_key(key, value, fragment):
    with pytest.raises(UserError, match=None) as err:
        parse_params(_mutate(key, value))
    assert fragment in str(err.value)


def test_missing_required_key_is_named():
    params = default_params()
    del params["data"]["target"]
    with pytest.raises(UserError, match="data.target is missing"):
        parse_params(params)


def test_model_name_must_be_usable_as_a_stage_name():
    params = default_params()
    params["models"]["my model"] = params["models"].pop("mlp")
    with pytest.raises(UserError, match="model name 'my model'"):
        parse_params(params)


def test_invalid_yaml_names_the_line(tmp_path):
    (tmp_path / "params.yaml").write_text("data:\n  path: [unclosed\n")
    with pytest.raises(UserError, match=r"invalid YAML at line \d+"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("section, value", [("train", [1, 2]), ("models", 5), ("data", "data.csv")])
def test_a_section_that_is_not_a_mapping_is_named(section, value):
    params = default_params()
    params[section] = value
    with pytest.raises(UserError, match=f"params.yaml: {section} must be a mapping of settings"):
        parse_params(params)


@pytest.mark.parametrize("section", ["data", "train", "models"])
def test_a_missing_or_empty_section_says_what_to_write(section):
    # dvc.yaml tracks each section as a stage parameter, so DVC itself refuses a file without `train`,
    # even though every key in it has a default: the schema asks for the section (train: {} is enough).
    params = default_params()
    del params[section]
    with pytest.raises(UserError, match=f"^params.yaml: {section} is missing; ") as missing:
        parse_params(params)
    params[section] = None
    with pytest.raises(UserError, match=f"^params.yaml: {section} is empty; ") as empty:
        parse_params(params)
    assert str(missing.value).split("; ", 1)[1] == str(empty.value).split("; ", 1)[1]
    if section == "train":
        assert "train: {}" in str(missing.value)
        params["train"] = {}
        assert parse_params(params).train == TrainParams()


def test_messages_name_the_params_file_given_with_params(tmp_path, monkeypatch):
    params = default_params()
    params["models"]["mlp"]["lr"] = -1
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as raised:
        load_params("exp.yaml")
    assert str(raised.value).startswith("exp.yaml: models.mlp.lr") and "params.yaml" not in str(raised.value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(UserError, match=r"^params.yaml: models.mlp.lr"):
        load_params()
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(default_params()))
    with pytest.raises(UserError, match=r"^exp.yaml: no model 'forest' under models; known: linear, mlp$"):
        load_params("exp.yaml").model("forest")


def load_text(tmp_path, text: str):
    (tmp_path / "params.yaml").write_text(text)
    return load_params(tmp_path / "params.yaml")


def with_lines(replace: str, by: str) -> str:
    text = (ROOT / "params.yaml").read_text()
    assert replace in text
    return text.replace(replace, by, 1)


@pytest.mark.parametrize(
    "old, new, value",
    [
        ("    lr: 0.01", "    lr: 1e-06", 1e-06),  # how `dvc exp run -S` writes a small lr: a number in YAML 1.2
        ("    lr: 0.01", "    lr: 1E-3", 0.001),
        ("    lr: 0.01", "    lr: '0.02'", 0.02),  # a number in quotes means that number
        ("    epochs: 1000\n    batch_size", "    epochs: 0o20\n    batch_size", 16),  # YAML 1.2 octal: 16 for DVC too
    ],
)
def test_values_load_as_dvc_records_them(tmp_path, old, new, value):
    mlp = load_text(tmp_path, with_lines(old, new)).models["mlp"]
    assert (mlp.lr if "lr" in old else mlp.epochs) == value


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("    epochs: 1000\n    batch_size", "    epochs: 010\n    batch_size",
         "line {line}: models.mlp.epochs: 010 has a leading zero, which YAML 1.2 (DVC's) reads as decimal and YAML 1.1 "
         "as octal; write it without the zero"),
        ("    - 10\n", "    - 010\n", "line {line}: models.mlp.hidden: 010 has a leading zero"),
        ("    epochs: 1000\n    batch_size", "    epochs: 1:30\n    batch_size",
         "models.mlp.epochs must be an integer, got '1:30' (str); YAML 1.1 read 1:30 as 90 (base 60)"),
        ("    lr: 0.01", "    lr: 1:30.5", "YAML 1.1 read 1:30.5 as 90.5 (base 60), YAML 1.2 (DVC's) as text"),
        ("  standardize: false", "  standardize: Off", "got 'Off' (str); YAML 1.1 read Off as a boolean, YAML 1.2 "
         "(DVC's) as text: write true or false"),
        ("    lr: 0.01\n", "    lr: 0.01\n    lr: 0.02\n", "line {line}: key 'lr' appears twice in the same mapping"),
        ("models:", "models:\n  linear: {}\nmodels:", "key 'models' appears twice in the same mapping"),
    ],
)  # fmt: skip
def test_spellings_that_yaml_1_1_reads_otherwise_and_duplicate_keys_are_refused(tmp_path, old, new, message):
    text = with_lines(old, new)
    # the line named: the first line of the replacement that is not the original's
    new_lines, old_lines = new.split("\n"), old.split("\n")
    changed = next(i for i, line in enumerate(new_lines) if i >= len(old_lines) or line != old_lines[i])
    line = text[: text.index(new)].count("\n") + 1 + changed
    with pytest.raises(UserError) as refused:
        load_text(tmp_path, text)
    assert str(refused.value).startswith(f"{tmp_path / 'params.yaml'}: ")
    assert message.format(line=line) in str(refused.value)


def test_a_column_named_like_a_yaml_1_1_boolean_is_text_as_dvc_records_it(tmp_path):
    params = load_text(tmp_path, with_lines("  target: y ", "  target: yes "))
    assert params.data.target == "yes"


def test_a_model_name_too_long_for_a_file_name_is_refused():
    params = default_params()
    params["models"]["m" * 300] = {"kind": "linear", "solver": "exact"}
    with pytest.raises(
        UserError,
        match=r"params.yaml: model name m{20}\.\.\. under models is 300 characters long; "
        r"use at most 100 \(it names files\)",
    ):
        parse_params(params)
    params = default_params()
    params["models"]["m" * 100] = {"kind": "linear", "solver": "exact"}
    assert "m" * 100 in parse_params(params).models


def test_weight_decay_and_early_stopping_are_read_and_checked():
    params = default_params()
    params["models"]["mlp"].update(weight_decay=0.01, early_stopping={"validation_fraction": 0.2, "patience": 30})
    mlp = parse_params(params).models["mlp"]
    assert mlp.weight_decay == 0.01 and mlp.early_stopping == EarlyStopping(0.2, 30)
    assert parse_params(default_params()).models["mlp"].early_stopping is None


@pytest.mark.parametrize(
    "model, change, message",
    [
        ("mlp", {"early_stopping": 0.2}, "models.mlp.early_stopping must be a mapping, e.g. {validation_fraction: 0.2, "
         "patience: 50}, got 0.2 (float)"),
        ("mlp", {"early_stopping": {"validation_fraction": 0.2}}, "models.mlp.early_stopping.patience is missing"),
        ("mlp", {"early_stopping": {"validation_fraction": 0.2, "patience": 5, "delta": 1}},
         "unknown key models.mlp.early_stopping.delta"),
        ("linear", {"solver": "lbfgs", "lr": 1.0, "weight_decay": 0.1},
         "models.linear.weight_decay is Adam's (decoupled, as in AdamW); solver lbfgs has none"),
        ("linear", {"solver": "exact", "early_stopping": {"validation_fraction": 0.2, "patience": 5}},
         "models.linear.early_stopping needs epochs to stop; solver exact has none: remove it"),
    ],
)  # fmt: skip
def test_regularization_settings_that_cannot_apply_are_refused(model, change, message):
    params = default_params()
    params["models"][model].update(change)
    with pytest.raises(UserError, match=re.escape(message)):
        parse_params(params)
