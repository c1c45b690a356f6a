"""`train --init MODEL`: fine-tuning from a trained model's weights and architecture, with an epoch-0 row."""

import csv
import json
from pathlib import Path

import pytest

from waveunet_tf.cli import main

RATE = 8192
TINY = ["--set", f"sample_rate={RATE}", "--set", "num_layers=3", "--set", "num_initial_filters=4",
        "--set", "requested_output=512", "--set", "batch_size=4"]
SHORT = ["--set", "steps_per_epoch=2", "--max-steps", "2", "--no-progress"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    import data_pipeline
    root = tmp_path_factory.mktemp("init-data")
    data_pipeline.make_synthetic_dataset(root / "synth", tracks=3, test_tracks=0, seconds=3, seed=2)
    data_pipeline.prepare_cache(root / "synth", root / "cache", RATE, wav=True)
    return str(root / "cache")


def history(run):
    with open(Path(run) / "history.csv") as f:
        return list(csv.DictReader(f))


def test_init_starts_from_the_models_best_loss(cache, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--variant", "M4", *TINY, *SHORT, "--cache", cache, "--run-dir", str(a)]) == 0
    best_a = min(float(r["valid_loss"]) for r in history(a))
    capsys.readouterr()
    # protocol keys may change (here the learning rate and the epochs); the architecture comes from A
    assert main(["train", "--init", str(a), "--set", "learning_rate=1e-5", "--set", "steps_per_epoch=2",
                 "--max-steps", "1", "--no-progress", "--cache", cache, "--run-dir", str(b)]) == 0
    err = capsys.readouterr().err
    rows = history(b)
    assert rows[0]["epoch"] == "0" and rows[0]["train_loss"] == "" and rows[0]["steps"] == "0"
    assert float(rows[0]["valid_loss"]) == pytest.approx(best_a, rel=1e-5)
    assert f"starting from the weights of {a}" in err
    assert [r["epoch"] for r in rows] == ["0", "1"] and float(rows[1]["learning_rate"]) == pytest.approx(1e-5)
    # epoch 1 is a new best only if it beats the starting weights
    assert rows[1]["improved"] == str(int(float(rows[1]["valid_loss"]) < best_a))
    config = json.loads((b / "config.json").read_text())
    assert config["num_layers"] == 3 and config["learning_rate"] == 1e-5 and config["steps_per_epoch"] == 2

    # an architecture key that differs is refused with one line, before anything is written
    c = tmp_path / "c"
    assert main(["train", "--init", str(a / "best.keras"), "--set", "num_layers=4", "--cache", cache, "--run-dir",
                 str(c)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "num_layers=3 but the config asks for num_layers=4" in err[0], err
    assert not c.exists()
    assert main(["train", "--init", str(a / "best.keras"), "--variant", "M6", *TINY, "--cache", cache,
                 "--run-dir", str(c)]) == 2
    assert "sources=accompaniment,vocals but the config asks for sources=bass,drums,other,vocals" in \
        capsys.readouterr().err
    assert main(["train", "--init", str(tmp_path / "nothing.keras"), "--cache", cache, "--run-dir", str(c)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_reproduce_init_takes_the_architecture_from_the_model(tmp_path, capsys):
    from waveunet_tf import build_model, variant_config
    model = tmp_path / "m4.keras"
    build_model(variant_config("M4", num_layers=3, num_initial_filters=4, requested_output=512)).save(model)
    run = tmp_path / "run"
    # M6's sources are not the model's: refused with one line, before any data is made
    assert main(["reproduce", "--variant", "M6", "--set", "num_layers=3", "--set", "num_initial_filters=4", "--init",
                 str(model), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--init" in err[0] and "sources=accompaniment,vocals" in err[0], err
    # M4 at its full size is not this model either: num_layers is named
    assert main(["reproduce", "--variant", "M4", "--init", str(model), "--run-dir", str(run)]) == 2
    assert "num_layers=3 but the config asks for num_layers=12" in capsys.readouterr().err
    assert not run.exists()
