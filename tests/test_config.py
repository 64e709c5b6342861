import pytest

from mnistlab.core.config import TrainConfig


def test_defaults_follow_the_tutorial():
    config = TrainConfig()
    assert (config.epochs, config.batch_size, config.seed) == (10, 200, 7)


def test_file_then_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "mlp"\nepochs = 3\nlearning_rate = 1\n')
    config = TrainConfig.from_sources(path, epochs=5, seed=None)
    assert (config.model, config.epochs, config.learning_rate, config.seed) == ("mlp", 5, 1.0, 7)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epoch": 3}, "Unknown config key"),
        ({"epochs": "3"}, "must be int"),
        ({"epochs": True}, "must be int"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"schedule": "cyclic"}, "schedule must be one of"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"deterministic": "maybe"}, "deterministic must be true or false"),
        ({"elastic_alpha": -1.0}, "elastic_alpha must be 0 or more"),
        ({"elastic_sigma": 0}, "elastic_sigma must be positive"),
    ],
)
def test_bad_values_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(values)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ValueError, match="Cannot read config file"):
        TrainConfig.from_sources(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3")
    with pytest.raises(ValueError, match="not valid TOML"):
        TrainConfig.from_sources(bad)
