"""Configs: every shipped file resolves; unknown keys and bad values get actionable errors."""

import tomllib
from pathlib import Path

import pytest

import backprop as bp
from backprop.app import config as cfg

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))

SMALL = """\
[data]
source = "digits"

[model]
seed = 0

[[model.layers]]
type = "Dense"
out_features = 16
[[model.layers]]
type = "ReLU"
[[model.layers]]
type = "Dense"

[loss]
name = "cross_entropy"

[trainer]
epochs = 3
batch_size = 64
"""


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def test_shipped_configs_all_resolve():
    names = {p.stem for p in CONFIGS}
    assert {"digits", "xor", "moons", "diabetes", "mnist"} <= names
    assert {"digits-stochastic", "digits-batch", "digits-minibatch"} <= names
    modes = {}
    for path in CONFIGS:
        config = bp.load_config(path)
        modes[path.stem] = config["trainer"]["mode"]
    assert modes["digits-stochastic"] == "stochastic" and modes["digits-batch"] == "batch"
    assert modes["digits-minibatch"] == "minibatch"


def test_defaults_are_filled_in_and_widths_inferred(small):
    config = bp.load_config(small)
    assert config["optimizer"] == {"name": "adam", **_adam_defaults()}
    assert config["trainer"]["mode"] == "minibatch" and config["schedule"] is None
    model = cfg.build_model(config, n_features=64, n_outputs=10)
    assert model.parameters()["0.W"].shape == (64, 16)
    assert model.parameters()["2.W"].shape == (16, 10)


def _adam_defaults():
    return {"lr": 0.001, "beta_1": 0.9, "beta_2": 0.999, "eps": 1e-8, "amsgrad": False}


def test_unknown_key_names_allowed_keys_file_and_line(small):
    small.write_text(SMALL.replace("epochs = 3", "epochs = 3\nepoks = 4"))
    with pytest.raises(bp.ConfigError) as err:
        bp.load_config(small)
    message = str(err.value)
    assert "unknown key trainer.epoks" in message
    assert f"{small}, line 20" in message
    assert "batch_size" in message and "clip_norm" in message


def test_unknown_layer_argument_names_the_layer_and_its_arguments(small):
    small.write_text(SMALL.replace("out_features = 16", "out_features = 16\nunits = 3"))
    with pytest.raises(bp.ConfigError, match=r"line 10: unknown key 'units' for layer 0 \(Dense\)"):
        bp.load_config(small)


def test_unknown_names_list_the_valid_ones(small):
    small.write_text(
        SMALL.replace(
            'name = "cross_entropy"', 'name = "cross_entropy"\n[optimizer]\nname = "adamx"'
        )
    )
    with pytest.raises(
        bp.ConfigError, match="unknown optimizer 'adamx'; valid names: adagrad, adam"
    ):
        bp.load_config(small)
    small.write_text(SMALL.replace('type = "ReLU"', 'type = "Relu"'))
    with pytest.raises(bp.ConfigError, match="unknown layer type 'Relu'"):
        bp.load_config(small)
    small.write_text(SMALL + "\n[optimiser]\nlr = 1\n")
    with pytest.raises(bp.ConfigError, match=r"unknown table\(s\) \['optimiser'\]"):
        bp.load_config(small)


def test_wrong_type_in_the_file(small):
    small.write_text(SMALL.replace("epochs = 3", 'epochs = "3"'))
    with pytest.raises(
        bp.ConfigError, match="line 19: trainer.epochs: expected an integer, got '3'"
    ):
        bp.load_config(small)


def test_set_overrides_with_type_checks(small):
    config = bp.load_config(
        small, ["trainer.epochs=7", "optimizer.lr=1", "optimizer.name=sgd", "trainer.shuffle=false"]
    )
    assert config["trainer"]["epochs"] == 7 and config["trainer"]["shuffle"] is False
    assert config["optimizer"]["name"] == "sgd" and config["optimizer"]["lr"] == 1.0
    assert isinstance(config["optimizer"]["lr"], float)
    bad = {
        "trainer.epochs=abc": "--set trainer.epochs=abc: trainer.epochs: expected an integer, got 'abc'",
        "trainer.epochs=2.5": "expected an integer, got 2.5",
        "trainer.shuffle=1": "expected true or false, got 1",
        "optimizer.lr=fast": "optimizer.lr: expected a number, got 'fast'",
        "trainer.epochz=3": "unknown key trainer.epochz",
        "trainer=3": "expected section.key=value",
        "train.epochs=3": "unknown section 'train'",
    }
    for item, message in bad.items():
        with pytest.raises(bp.ConfigError) as err:
            bp.load_config(small, [item])
        assert message in str(err.value), (item, str(err.value))


def test_resolved_config_round_trips_through_toml(small):
    config = bp.load_config(small, ["trainer.clip_norm=5"])
    again = cfg.resolve(tomllib.loads(cfg.dumps(config.resolved)))
    assert again.resolved == config.resolved


def test_set_can_change_the_class_of_a_resolved_config(small, tmp_path):
    """A run's config.toml spells out every default of its optimizer (amsgrad = false, ...), so
    ``--set optimizer.name=sgd`` on it was refused: "config.toml, line 37: unknown key
    optimizer.amsgrad", naming a line the user never wrote. The old class's defaults go; a key
    the user set stays and is refused, naming the --set that replaced its class."""
    resolved = tmp_path / "config.toml"
    resolved.write_text(cfg.dumps(bp.load_config(small, ["data.source=moons"]).resolved))
    config = bp.load_config(resolved, ["optimizer.name=sgd", "data.source=digits"])
    assert config["optimizer"] == {"name": "sgd", "lr": 0.001, "momentum": 0.0, "nesterov": False}
    assert "n_samples" not in config["data"] and config["data"]["source"] == "digits"
    resolved.write_text(resolved.read_text().replace("amsgrad = false", "amsgrad = true"))
    with pytest.raises(bp.ConfigError) as err:
        bp.load_config(resolved, ["optimizer.name=sgd"])
    assert "unknown key optimizer.amsgrad (--set optimizer.name=sgd replaced the name" in str(
        err.value
    )


def test_an_empty_layer_list_from_set_names_the_set(small):
    """It named the file's [model] line, where the layers were fine."""
    with pytest.raises(bp.ConfigError, match=r"^--set model.layers=\[\]: \[model\] needs"):
        bp.load_config(small, ["model.layers=[]"])


def test_a_run_directory_given_as_config_says_what_it_is(tmp_path):
    """`backprop train runs/x` said "config file not found: runs/x" of a folder that exists."""
    (tmp_path / "config.toml").write_text(SMALL)
    with pytest.raises(bp.ConfigError, match=r"is a directory, not a config file \(a run: its"):
        bp.load_config(tmp_path)


def test_missing_config_file(tmp_path):
    with pytest.raises(bp.ConfigError, match="config file not found: .*nope.toml"):
        bp.load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "section, name", [("optimizer", "SGD"), ("loss", "CrossEntropy"), ("schedule", "cosin")]
)
def test_an_unknown_class_name_names_its_file_line_or_set(small, section, name):
    """`name = "SGD"` said only "unknown optimizer 'SGD'": no file, no line, no --set, while
    every other bad value of a config named its place."""
    table = f'\n[{section}]\nname = "{name}"\n'
    text = SMALL.replace('[loss]\nname = "cross_entropy"\n', "") + table
    small.write_text(text)
    line = text.splitlines().index(f'name = "{name}"') + 1
    with pytest.raises(bp.ConfigError) as err:
        bp.load_config(small)
    assert f"{small}, line {line}: unknown {section} {name!r}; valid names:" in str(err.value)
    small.write_text(SMALL)
    with pytest.raises(bp.ConfigError) as err:
        bp.load_config(small, [f"{section}.name={name}"])
    assert f"--set {section}.name={name}: unknown {section} {name!r}" in str(err.value)


def test_a_schedule_table_without_a_name_says_it_needs_one(small):
    """`[schedule]` with `total = 40` and no name said "schedule.name: expected a string, got
    None": about a value the user never wrote."""
    text = SMALL + "\n[schedule]\ntotal = 40\n"
    small.write_text(text)
    line = text.splitlines().index("[schedule]") + 1
    with pytest.raises(bp.ConfigError) as err:
        bp.load_config(small)
    message = str(err.value)
    assert f"{small}, line {line}: [schedule] needs a name" in message, message
    assert "cosine" in message and "None" not in message, message


@pytest.mark.parametrize(
    "layers, message",
    [
        ('[{type = "Dense", out_features = 8}, {type = "Relu"}]', "unknown layer type 'Relu'"),
        ('[{type = "Dense", units = 8}]', "unknown key 'units' for layer 0 (Dense)"),
        ('[{type = "Dense", out_features = "8"}]', "layer 0 out_features: expected an integer"),
    ],
)
def test_a_bad_layer_given_by_set_is_blamed_on_the_set(small, layers, message):
    """A bad layer in `--set model.layers=[...]` was blamed on the file's line of its first
    [[model.layers]] table, which holds nothing wrong."""
    with pytest.raises(bp.ConfigError) as err:
        bp.load_config(small, [f"model.layers={layers}"])
    assert str(err.value).startswith(f"--set model.layers={layers}: "), str(err.value)
    assert message in str(err.value) and "line" not in str(err.value), str(err.value)


@pytest.mark.parametrize("section", ["model", "trainer", "data"])
def test_a_negative_seed_is_named(small, section):
    """`--set model.seed=-1` said "[model]: expected non-negative integer" (numpy's words: no
    key, no value); data.seed = -1 quoted sklearn's make_moons random_state."""
    with pytest.raises(bp.ConfigError) as err:
        bp.load_config(small, [f"{section}.seed=-1"])
    message = str(err.value)
    assert f"--set {section}.seed=-1: {section}.seed must be an integer >= 0, got -1" in message


@pytest.mark.parametrize("item", ["data.test_size=1.5", "data.validation_size=-0.1"])
def test_a_split_size_out_of_range_names_its_value(small, item):
    """ "data.test_size must be in [0, 1)" named the key but not the value it was given."""
    key, value = item.split("=")
    with pytest.raises(bp.ConfigError) as err:
        bp.load_config(small, [item])
    assert f"--set {item}: {key} must be in [0, 1), got {value}" in str(err.value)
