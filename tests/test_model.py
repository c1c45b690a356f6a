"""build_model against the official implementation's measured sizes (../shared/reference/official_variants.json),
.keras round trips, Keras' loading convention in a fresh process, files written by the previous layout, several
valid lengths, and the CLI's variants table."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from waveunet_tf import build_model, shapes, variant_config
from waveunet_tf.config import reference_facts, variant_names
from waveunet_tf.layers import WaveUNet
from waveunet_tf.model_io import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared"
OFFICIAL_VARIANTS = SHARED / "reference" / "official_variants.json"
OFFICIAL_TF1 = SHARED / "fixtures" / "official_tf1"
OLD_LAYOUT = Path(__file__).parent / "data" / "old_layout_M5_tiny.keras"  # saved by the code of commit f826a35
EIGHT = ["M1", "M2", "M3", "M4", "M5", "M6", "M7", "M5-HighSR"]
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def official():
    """The official implementation's facts per variant: lengths and trainable parameter counts."""
    if not OFFICIAL_VARIANTS.is_file():
        pytest.fail(f"no shared reference beside the checkout ({OFFICIAL_VARIANTS}); put ../shared beside the clone")
    return json.loads(OFFICIAL_VARIANTS.read_text())


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "waveunet_tf.cli", *args], capture_output=True, text=True)


def tiny(name, **kw):
    kw = {"num_layers": 3, "num_initial_filters": 4,
          "requested_output": 20 if variant_config(name).context else 16, **kw}
    return variant_config(name, **kw)


@pytest.mark.parametrize("name", ["M4", "M7"] + [pytest.param(n, marks=slow) for n in EIGHT if n not in ("M4", "M7")])
def test_built_model_has_the_official_weight_count_and_lengths(official, name):
    cfg, facts = variant_config(name), official[name]
    model = build_model(cfg)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == facts["params"]
    assert not model.non_trainable_weights
    assert (cfg.input_length, cfg.output_length) == (facts["input_length"], facts["output_length"])
    assert list(model.output) == facts["sources"] and model.input.shape[-1] == facts["channels"]


@slow
@pytest.mark.parametrize("name", EIGHT)
def test_full_size_variant_runs_at_the_official_lengths_and_round_trips(official, tmp_path, name):
    facts, cfg = official[name], variant_config(name)
    model = build_model(cfg)
    model.save(tmp_path / f"{name}.keras")
    loaded = keras.models.load_model(tmp_path / f"{name}.keras")  # no custom_objects: the package registered them
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
    cfg = tiny(name)
    model = build_model(cfg)
    model.save(tmp_path / "m.keras")
    loaded, loaded_cfg = load_model(tmp_path / "m.keras")
    assert isinstance(loaded, WaveUNet) and loaded_cfg == cfg
    x = np.random.default_rng(1).uniform(-1, 1, (2, cfg.input_length, cfg.channels)).astype(np.float32)
    for s in cfg.sources:
        np.testing.assert_allclose(model(x)[s], loaded(x)[s], atol=1e-6)
        assert model(x)[s].shape == (2, cfg.output_length, cfg.channels)


def test_the_layers_dtype_policy_survives_saving_twice(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")  # as `train --mixed-precision` builds the model
    try:
        build_model(tiny("M5")).save(tmp_path / "a.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    keras.models.load_model(tmp_path / "a.keras").save(tmp_path / "b.keras")
    again = keras.models.load_model(tmp_path / "b.keras")
    policies = {layer.name: layer.dtype_policy.name for layer in again.layers[1:]}
    # the input check and the output side stay float32 under a mixed policy (issue 17)
    outer = {n for n in policies if n == "input_check" or n.startswith(("output_conv_", "clip_", "difference_"))}
    assert len(outer) == 3 and {policies[n] for n in outer} == {"float32"}
    assert {p for n, p in policies.items() if n not in outer} == {"mixed_float16"}


def test_a_file_saved_with_the_config_in_its_input_check_still_loads():
    old, cfg = load_model(OLD_LAYOUT)
    assert cfg == variant_config("M5", num_layers=2, num_initial_filters=2, filter_size=5, merge_filter_size=3,
                                 input_filter_size=5, requested_output=16)
    new = build_model(cfg)  # the same weights in today's model give the same outputs
    for layer in new.layers:
        layer.set_weights(old.get_layer(layer.name).get_weights())
    x = np.random.default_rng(3).uniform(-1, 1, (1, cfg.input_length + shapes.step(cfg), 2)).astype(np.float32)
    y_old, y_new = old(x), new(x)
    for s in cfg.sources:
        np.testing.assert_array_equal(np.asarray(y_old[s]), np.asarray(y_new[s]))
        assert np.abs(np.asarray(y_new[s])).max() > 0.01


LOAD_SCRIPT = """
import sys
{imports}
import numpy as np
for path in sys.argv[1:]:
    model = keras.models.load_model(path)
    outputs = model(np.load(path + ".in.npy"), training=False)
    np.savez(path + ".out.npz", **{{k: np.asarray(v) for k, v in outputs.items()}})
"""
PACKAGE_FIRST = ("import waveunet_tf\n"
                 "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'the package imported TF'\n"
                 "import keras")


def load_in_fresh_processes(expected: dict):
    """``expected``: {.keras path: (input [B, T, C], {source: output})}. Loads each file with plain
    keras.models.load_model in fresh processes (the package imported before and after keras, and before
    tensorflow)."""
    for path, (x, _) in expected.items():
        np.save(f"{path}.in.npy", x)
    for imports in (PACKAGE_FIRST, "import keras\nimport waveunet_tf",
                    "import waveunet_tf\nimport tensorflow\nimport keras"):  # TF looks Keras up before loading it
        res = subprocess.run([sys.executable, "-c", LOAD_SCRIPT.format(imports=imports), *map(str, expected)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-2000:]
        for path, (_, want) in expected.items():
            with np.load(f"{path}.out.npz") as got:
                assert sorted(got) == sorted(want)
                for s in want:
                    np.testing.assert_allclose(got[s], want[s], atol=1e-5, err_msg=f"{path} {s}")


def test_import_waveunet_tf_is_enough_for_keras_load_model(tmp_path):
    case = OFFICIAL_TF1 / "tiny_M5"
    if not case.is_dir():
        pytest.fail(f"no official TF1 checkpoints beside the checkout ({OFFICIAL_TF1}); put ../shared beside the clone")
    cfg = tiny("M5")
    built = build_model(cfg)
    built.save(tmp_path / "built.keras")
    x = np.random.default_rng(4).uniform(-1, 1, (1, cfg.input_length, cfg.channels)).astype(np.float32)
    expected = {tmp_path / "built.keras": (x, {s: np.asarray(v) for s, v in built(x, training=False).items()})}

    old, old_cfg = load_model(OLD_LAYOUT)
    x_old = np.random.default_rng(5).uniform(-1, 1, (2, old_cfg.input_length, 2)).astype(np.float32)
    shutil.copy(OLD_LAYOUT, tmp_path / "old.keras")  # the loader writes its inputs and outputs beside the file
    expected[tmp_path / "old.keras"] = (x_old, {s: np.asarray(v) for s, v in old(x_old, training=False).items()})

    # written by `waveunet import-official`; expected: the official graph's outputs
    res = run_cli("import-official", str(case), "--official-config", str(case / "config.json"),
                  "--out", str(tmp_path / "imported.keras"))
    assert res.returncode == 0, res.stderr
    with np.load(case / "io.npz") as io:
        expected[tmp_path / "imported.keras"] = (io["mixture"], {s: io[s] for s in io.files if s != "mixture"})
    load_in_fresh_processes({str(k): v for k, v in expected.items()})


@slow
def test_a_model_written_by_train_loads_with_plain_keras(tmp_path):
    import data_pipeline
    rate = 8192
    data_pipeline.make_synthetic_dataset(tmp_path / "synth", tracks=2, test_tracks=0, seconds=3, seed=2)
    data_pipeline.prepare_cache(tmp_path / "synth", tmp_path / "cache", rate, wav=True)
    sets = dict(sample_rate=rate, num_layers=3, num_initial_filters=4, requested_output=256, batch_size=2,
                steps_per_epoch=2, max_epochs=1)
    res = run_cli("train", "--variant", "M4", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
                  "--cache", str(tmp_path / "cache"), "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert res.returncode == 0, res.stderr[-2000:]
    model, cfg = load_model(tmp_path / "run")
    x = np.random.default_rng(6).uniform(-1, 1, (1, cfg.input_length, cfg.channels)).astype(np.float32)
    load_in_fresh_processes({str(tmp_path / "run" / "best.keras"):
                             (x, {s: np.asarray(v) for s, v in model(x, training=False).items()})})


def test_difference_output_sums_to_mixture_and_tanh_range():
    cfg = tiny("M6")
    model = build_model(cfg)
    x = np.random.default_rng(2).uniform(-0.3, 0.3, (1, cfg.input_length, 2)).astype(np.float32)
    y = model(x, training=True)
    left, _ = shapes.context(cfg)
    centre = x[:, left:left + cfg.output_length]
    np.testing.assert_allclose(sum(np.asarray(y[s]) for s in cfg.sources), centre, atol=1e-6)
    assert all(np.abs(np.asarray(y[s])).max() < 1 for s in cfg.sources[:-1])


def test_model_rejects_bad_length_and_channels():
    cfg = tiny("M4")
    model = build_model(cfg)
    # worked by hand: valid lengths are input_length + k * 2**3
    n = cfg.input_length + 1
    with pytest.raises(Exception, match=f"nearest valid lengths are {cfg.input_length} or {cfg.input_length + 8}"):
        model(np.zeros((1, n, 2), np.float32))
    with pytest.raises(Exception, match="this model takes 2"):
        model(np.zeros((1, cfg.input_length, 1), np.float32))


def wave_unet_params(row) -> int:
    """Trainable weights of the official Wave-U-Net, counted by hand from its layers (UnetAudioSeparator.py):
    L downsampling convolutions (filter_size, F*(i+1) filters), a bottleneck (F*(L+1)), L upsampling blocks
    (learned upsampling: one weight per feature channel; a merge convolution of merge_filter_size back to
    F*(j+1) filters on the upsampled features and the skip connection), and one output convolution per source
    (but the last with a difference output) on F features plus the mixture's C channels."""
    F, L, C = row["num_initial_filters"], row["num_layers"], row["channels"]
    k, m, o = row["filter_size"], row["merge_filter_size"], row["output_filter_size"]

    def conv(width, inputs, filters):
        return width * inputs * filters + filters

    n = conv(k, C, F) + sum(conv(k, F * i, F * (i + 1)) for i in range(1, L)) + conv(k, F * L, F * (L + 1))
    for j in reversed(range(L)):
        n += F * (j + 2) if row["upsampling"] == "learned" else 0
        n += conv(m, F * (j + 2) + F * (j + 1), F * (j + 1))
    return n + (len(row["sources"]) - (row["output_type"] == "difference")) * conv(o, F + C, C)


def test_variants_json_lists_all_eight_with_official_sizes(official):
    res = run_cli("variants", "--json")
    assert res.returncode == 0 and res.stderr == ""
    rows = json.loads(res.stdout)
    assert [r["name"] for r in rows] == EIGHT
    for r in rows:
        f = official[r["name"]]
        assert set(r) == {"name", "description", "sample_rate", "channels", "sources", "input_length",
                          "output_length", "params"}
        # the lengths the package works out (shapes.py) against the official graph's, measured
        for key in ("sample_rate", "channels", "sources", "input_length", "output_length"):
            assert r[key] == f[key], (r["name"], key)
        # the listed count against one worked by hand from the official architecture (and the measured one)
        assert r["params"] == wave_unet_params({**f, "sources": r["sources"]}) == f["params"], r["name"]
    table = run_cli("variants")
    assert table.returncode == 0 and f"{official['M1']['params']:,}" in table.stdout and "M5-HighSR" in table.stdout


def test_the_package_copy_of_the_facts_equals_the_shared_reference(official):
    assert reference_facts() == official


def test_cli_bad_arguments_exit_2_with_one_line():
    res = run_cli("import-official", "ckpt", "--variant", "M4", "--out", "x.h5")
    assert res.returncode == 2 and res.stderr.strip() == \
        "waveunet import-official: error: --out must end in .keras, not 'x.h5'"
    res = run_cli("import-official", "ckpt", "--variant", "M9", "--out", "/tmp/never.keras")
    assert res.returncode == 2 and "unknown variant 'M9'; known variants: M1," in res.stderr  # a bad argument
    assert len(res.stderr.strip().splitlines()) == 1
