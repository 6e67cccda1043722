"""Specs: every kind of bad spec gets an error naming the field, the value and what is allowed."""

import copy
from pathlib import Path

import pytest
import yaml

from mcuforge.config import to_dict
from mcuforge.errors import MCUForgeError
from mcuforge.pipeline import check_spec
from mcuforge.spec import load_spec, parse_spec

GOOD = {
    "name": "digits",
    "data": {"dataset": "digits", "options": {"test_fraction": 0.2}},
    "model": {"arch": "tiny_cnn"},
    "train": {"epochs": 3},
}


def with_change(path, value):
    spec = copy.deepcopy(GOOD)
    node = spec
    *parents, leaf = path
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return spec


def test_good_spec_round_trips():
    spec = parse_spec(GOOD)
    assert spec.train.epochs == 3 and spec.train.optimizer == "adam"
    assert parse_spec(to_dict(spec)) == spec


@pytest.mark.parametrize(
    "path,value,message",
    [
        (("train", "epochs"), 0, r"train\.epochs: expected a value >= 1 and <= 10000\. Received: 0"),
        (("train", "epochs"), "ten", r"train\.epochs: expected an integer\. Received: 'ten'"),
        (("train", "optimizer"), "adagrad", r"train\.optimizer: expected one of adam, sgd, rmsprop\. Received: 'adagrad'"),
        (("train", "learning_rate"), -0.1, r"train\.learning_rate: expected a value > 0\.0 and <= 10\.0\. Received: -0\.1"),
        (("train", "momentum"), 0.9, r"train\.momentum: unknown key\. Allowed keys in train: batch_size, consistency_weight, epochs"),
        (("data", "dataset"), "cifar10", r"data\.dataset: expected one of digits, keywords, .*Received: 'cifar10'"),
        (("data", "options", "test_fraction"), 0.9, r"data\.options\.test_fraction: expected a value > 0\.0 and <= 0\.5\. Received: 0\.9"),
        (("data", "options", "noise"), 1, r"data\.options\.noise: unknown key"),
        (("model", "arch"), "lenet", r"model\.arch: expected one of ds_cnn, .*Received: 'lenet'"),
        (("model", "width"), 0, r"model\.width: expected a value > 0\.0 and <= 8\.0\. Received: 0"),
        (("model", "options"), {"blocks": 2}, r"model\.options\.blocks: unknown option for tiny_cnn"),
        (("deploy", "quantization"), "int4", r"deploy\.quantization: expected one of int8, int16x8\. Received: 'int4'"),
        (("name",), "My Model", r"name: expected lower-case letters.*Received: 'My Model'"),
        (("compress", "max_accuracy_drop"), "1%", r"compress\.max_accuracy_drop: expected a number or null\. Received: '1%'"),
    ],
)
def test_bad_spec_is_named(path, value, message):
    """Structure from parse_spec, the stages' options from the pipeline's up-front check."""
    with pytest.raises(MCUForgeError, match=message):
        check_spec(parse_spec(with_change(path, value)))


def test_missing_required_key():
    spec = copy.deepcopy(GOOD)
    del spec["model"]
    with pytest.raises(MCUForgeError, match=r"^model: required key is missing$"):
        parse_spec(spec)


def test_file_errors(tmp_path: Path):
    with pytest.raises(MCUForgeError, match="spec file not found"):
        load_spec(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(MCUForgeError, match="not valid YAML"):
        load_spec(bad)
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(MCUForgeError, match="expected a mapping"):
        load_spec(not_mapping)


def test_every_shipped_spec_loads():
    specs = sorted(Path(__file__).resolve().parent.parent.joinpath("specs").glob("*.yaml"))
    assert specs, "specs/ is empty"
    for path in specs:
        spec = load_spec(path)
        check_spec(spec)
        assert spec.name == path.stem
        assert yaml.safe_load(path.read_text())["name"] == spec.name
