"""A model runs in the precision asked for (issue 17): bfloat16 close to float32 with float32 outputs and an exact
float32 difference output, and a file saved in either precision loads in the other with the same weights."""

import numpy as np
import pytest

from waveunet_tf import build_model, shapes, variant_config
from waveunet_tf.layers.crop import center_crop
from waveunet_tf.model_io import load_any_model, load_model, policy_name

CFG = variant_config("M4", num_layers=3, num_initial_filters=4, filter_size=5, merge_filter_size=3,
                     input_filter_size=5, requested_output=32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.keras"
    model = build_model(CFG, "float32")
    model.save(path)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, CFG.input_length + 4 * shapes.step(CFG), 2))
    return path, x.astype(np.float32), {s: np.asarray(v) for s, v in model(x, training=False).items()}


def test_bfloat16_runs_close_to_float32_with_float32_outputs(saved, monkeypatch):
    path, x, expected = saved
    monkeypatch.setenv("WAVEUNET_NATIVE_BF16", "1")  # load_any_model refuses bfloat16 on a CPU without it
    loaded, _ = load_any_model(path, "bfloat16")
    assert loaded.precision == "bfloat16"
    got = loaded.predict(x)
    for s in CFG.sources:
        assert got[s].dtype == np.float32
        deviation = np.abs(got[s] - expected[s]).max()
        assert 0 < deviation < 0.02, (s, deviation)  # computed in bfloat16 (not float32), yet close


def test_the_difference_output_is_subtracted_in_float32(saved):
    path, x, _ = saved
    model, _ = load_model(path, precision="bfloat16")
    assert policy_name(model) == "mixed_bfloat16"
    assert {model.get_layer(n).dtype_policy.name for n in ("input_check", "output_conv_accompaniment",
                                                           "difference_vocals")} == {"float32"}
    out = model(x, training=False)
    accompaniment = np.asarray(out["accompaniment"])
    mixture = np.asarray(center_crop(x, accompaniment.shape[1]))
    # float32 arithmetic on the float32 estimate: a bfloat16 subtraction would be off by up to ~4e-3 here
    np.testing.assert_allclose(np.asarray(out["vocals"]), np.clip(mixture - accompaniment, -1, 1), atol=1e-6)


def test_a_bfloat16_file_loads_in_float32_exactly(saved, tmp_path):
    path, x, expected = saved
    model, _ = load_model(path, precision="bfloat16")
    model.save(tmp_path / "b.keras")
    as_saved, _ = load_model(tmp_path / "b.keras")
    assert policy_name(as_saved) == "mixed_bfloat16"
    back, _ = load_any_model(tmp_path / "b.keras", "float32")
    assert back.precision == "float32"
    got = back.predict(x)
    for s in CFG.sources:
        np.testing.assert_array_equal(got[s], expected[s])


def test_a_saved_model_runs_only_in_float32(tmp_path):
    from waveunet_tf.errors import UsageError
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"")  # refused before anything is read
    with pytest.raises(UsageError, match="SavedModel, which runs in float32 as exported: use --precision float32"):
        load_any_model(tmp_path / "1", "bfloat16")


def test_bfloat16_training_keeps_float32_weights_and_float32_s_loss():
    import tensorflow as tf
    from waveunet_tf.training import Trainer
    rng = np.random.default_rng(1)
    mixture = tf.constant(rng.uniform(-0.5, 0.5, (2, CFG.input_length, 2)).astype(np.float32))
    targets = {s: tf.constant(rng.uniform(-0.5, 0.5, (2, CFG.output_length, 2)).astype(np.float32))
               for s in CFG.sources}
    losses = {}
    for p in ("float32", "bfloat16"):
        trainer = Trainer(CFG, tf.distribute.get_strategy(), p)  # the same seed: the same initial weights
        assert policy_name(trainer.model) == ("mixed_bfloat16" if p == "bfloat16" else "float32")
        assert {v.dtype for v in trainer.model.trainable_variables} == {"float32"}
        losses[p] = [trainer.train_step((mixture, targets), 2)[0] for _ in range(3)]
    assert losses["bfloat16"][0] == pytest.approx(losses["float32"][0], rel=0.02)
    assert losses["bfloat16"][-1] < losses["bfloat16"][0]  # the float32 weights are updated
