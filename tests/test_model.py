"""build_model: every paper variant at full size (official lengths and parameter counts), .keras round trips,
several valid lengths, and the CLI's variants table."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from waveunet_tf import build_model, shapes, variant_config
from waveunet_tf.config import reference_facts, variant_names
from waveunet_tf.model_io import load_model


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "waveunet_tf.cli", *args], capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", variant_names())
def test_full_size_variant_is_exactly_official(tmp_path, name):
    facts, cfg = reference_facts()[name], variant_config(name)
    model = build_model(cfg)
    assert model.count_params() == facts["params"]
    assert [t.name for t in model.inputs] == ["mixture"] or model.input_names == ["mixture"]
    saved = tmp_path / f"{name}.keras"
    model.save(saved)
    loaded = keras.models.load_model(saved)  # no custom_objects: the layers are registered
    rng = np.random.default_rng(0)
    for n_in in (facts["input_length"], facts["input_length"] + shapes.step(cfg)):
        x = rng.uniform(-0.5, 0.5, (1, n_in, facts["channels"])).astype(np.float32)
        y, y_loaded = model(x, training=False), loaded(x, training=False)
        assert list(y) == facts["sources"]
        n_out = facts["output_length"] + (n_in - facts["input_length"])
        for s in facts["sources"]:
            assert tuple(y[s].shape) == (1, n_out, facts["channels"])
            np.testing.assert_allclose(y[s], y_loaded[s], atol=1e-6)


@pytest.mark.parametrize("name", variant_names())
def test_small_variant_round_trips_with_its_config(tmp_path, name):
    cfg = variant_config(name, num_layers=3, num_initial_filters=4,
                         requested_output=16 if not variant_config(name).context else 20)
    model = build_model(cfg)
    model.save(tmp_path / "m.keras")
    loaded, loaded_cfg = load_model(tmp_path / "m.keras")
    assert loaded_cfg == cfg
    x = np.random.default_rng(1).uniform(-1, 1, (2, cfg.input_length, cfg.channels)).astype(np.float32)
    for s in cfg.sources:
        np.testing.assert_allclose(model(x)[s], loaded(x)[s], atol=1e-6)
        assert model(x)[s].shape == (2, cfg.output_length, cfg.channels)


def test_difference_output_sums_to_mixture_and_tanh_range():
    cfg = variant_config("M6", num_layers=3, num_initial_filters=4, requested_output=20)
    model = build_model(cfg)
    x = np.random.default_rng(2).uniform(-0.3, 0.3, (1, cfg.input_length, 2)).astype(np.float32)
    y = model(x, training=True)
    left, _ = shapes.context(cfg)
    centre = x[:, left:left + cfg.output_length]
    np.testing.assert_allclose(sum(np.asarray(y[s]) for s in cfg.sources), centre, atol=1e-6)
    assert all(np.abs(np.asarray(y[s])).max() < 1 for s in cfg.sources[:-1])


def test_model_rejects_bad_length_and_channels():
    cfg = variant_config("M4", num_layers=3, num_initial_filters=4, requested_output=20)
    model = build_model(cfg)
    with pytest.raises(Exception, match="nearest valid lengths are"):
        model(np.zeros((1, cfg.input_length + 1, 2), np.float32))
    with pytest.raises(Exception, match="this model takes 2"):
        model(np.zeros((1, cfg.input_length, 1), np.float32))


def test_variants_json_lists_all_eight_with_official_sizes():
    res = run_cli("variants", "--json")
    assert res.returncode == 0 and res.stderr == ""
    rows = json.loads(res.stdout)
    facts = reference_facts()
    assert [r["name"] for r in rows] == ["M1", "M2", "M3", "M4", "M5", "M6", "M7", "M5-HighSR"]
    for r in rows:
        f = facts[r["name"]]
        assert set(r) == {"name", "description", "sample_rate", "channels", "sources", "input_length",
                          "output_length", "params"}
        for key in ("sample_rate", "channels", "sources", "input_length", "output_length", "params",
                    "description"):
            assert r[key] == f[key], (r["name"], key)
    table = run_cli("variants")
    assert table.returncode == 0 and "10,263,390" in table.stdout and "M5-HighSR" in table.stdout


def test_embedded_facts_match_the_shared_reference():
    from pathlib import Path
    shared = Path(__file__).resolve().parents[2] / "shared" / "reference" / "official_variants.json"
    if not shared.is_file():
        pytest.skip(f"no shared reference beside the checkout ({shared})")
    assert json.loads(shared.read_text()) == reference_facts()


def test_cli_bad_arguments_exit_2_with_one_line():
    res = run_cli("import-official", "ckpt", "--variant", "M4", "--out", "x.h5")
    assert res.returncode == 2 and res.stderr.strip() == \
        "waveunet import-official: error: --out must end in .keras, not 'x.h5'"
    res = run_cli("import-official", "ckpt", "--variant", "M9", "--out", "/tmp/never.keras")
    assert res.returncode == 1 and "unknown variant 'M9'; known variants: M1," in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
