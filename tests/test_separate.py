"""Whole-song separation in memory: the one windowing routine (stitching, decimation phase, concurrency), rates
and channels. The `separate` command and its files: tests/test_separate_files.py."""

import numpy as np
import pytest

from waveunet_tf import build_model, shapes, variant_config
from waveunet_tf.audio import resample
from waveunet_tf.errors import UserError
from waveunet_tf.model_io import LoadedModel
from waveunet_tf.separate import plan_for, run_windows, separate_array


def tiny_model(variant="M4", seed=0, **overrides):
    """A tiny untrained model with weights large enough that every output depends visibly on its input."""
    kw = dict(num_layers=4, num_initial_filters=4, requested_output=208 if variant in ("M1", "M2") else 200)
    cfg = variant_config(variant, **{**kw, **overrides})
    model = build_model(cfg)
    rng = np.random.RandomState(seed)
    for w in model.weights:
        w.assign(rng.randn(*w.shape).astype("float32") * 0.3)
    return model, cfg


def noise(length, channels, seed=1):
    return (np.random.RandomState(seed).randn(length, channels) * 0.1).astype(np.float32)


def direct(model, cfg, padded):
    """The network run once on a whole (valid-length) input: the reference for stitched windows."""
    return {s: v.numpy()[0] for s, v in model(padded[None], training=False).items()}


def at_model_rate(model, cfg, x, window="default", concurrency=1):
    """Separate ``x`` [T, C] at the model's rate through the one windowing routine."""
    loaded = LoadedModel.of_keras(model, cfg)
    return run_windows(loaded.predict, plan_for(loaded, len(x), window), x, cfg.sources, concurrency=concurrency)


def test_window_starts_on_the_decimation_grid():
    model, cfg = tiny_model()
    x = noise(cfg.input_length + 32, cfg.channels)
    full = direct(model, cfg, x[:cfg.input_length])
    # a window shifted by a multiple of 2**L computes the same samples; by any other shift it does not
    shifted = direct(model, cfg, x[16:16 + cfg.input_length])
    off = direct(model, cfg, x[8:8 + cfg.input_length])
    s = cfg.sources[0]
    np.testing.assert_allclose(shifted[s][:-16], full[s][16:], atol=1e-5)
    assert np.abs(off[s][:-8] - full[s][8:]).max() > 1e-2


def test_stitched_windows_equal_one_window_and_do_not_depend_on_window_length():
    model, cfg = tiny_model()
    length = 3000
    x = noise(length, cfg.channels)
    left, right = shapes.context(cfg)
    # reference: one valid window over the whole song (the smallest valid input whose output covers the song),
    # padded with the context in front
    w_in = shapes.nearest_valid_input_lengths(cfg, length + left + right)[-1]
    padded = np.zeros((w_in, cfg.channels), np.float32)
    padded[left:left + length] = x
    ref = {s: v[:length] for s, v in direct(model, cfg, padded).items()}
    loaded = LoadedModel.of_keras(model, cfg)
    for hop in (64, 400, "default"):
        est = at_model_rate(model, cfg, x, window=hop)
        plan = plan_for(loaded, length, hop)
        assert plan.count == (length + plan.hop - 1) // plan.hop
        for s in cfg.sources:
            assert est[s].shape == (length, cfg.channels)
            np.testing.assert_allclose(est[s], ref[s], atol=1e-4)
    assert plan_for(loaded, length, 64).count == 47


def test_concurrent_windows_join_in_order():
    model, cfg = tiny_model()
    x = noise(3000, cfg.channels)
    one = at_model_rate(model, cfg, x, window=64)
    for concurrency in (2, 3, 64):
        several = at_model_rate(model, cfg, x, window=64, concurrency=concurrency)
        for s in cfg.sources:
            np.testing.assert_array_equal(several[s], one[s])


def test_windows_are_the_song_with_zeros_beyond_its_ends():
    """Each window ``predict`` receives is the song zero-padded by hand, read from ``input_start(i)``; the kept
    parts are joined in order (a predict that returns its input's centre must give back the song)."""
    _, cfg = tiny_model()
    geometry = shapes.WindowGeometry.of(cfg)
    x = noise(1000, 2)
    plan = shapes.plan_aligned(geometry, len(x), 160)
    pad = np.concatenate([np.zeros((plan.left, 2)), x, np.zeros((plan.count * plan.hop + plan.input_length, 2))])
    seen = []

    def centre(window):
        i = len(seen)
        seen.append(window)
        np.testing.assert_array_equal(window[0], pad[i * plan.hop:i * plan.hop + plan.input_length])
        y = window[:, plan.left:plan.left + plan.output_length]
        return {"a": y, "b": -y}

    out = run_windows(centre, plan, x, ("a", "b"))
    assert len(seen) == plan.count == 7  # ceil(1000 / 160) windows of 144 kept samples
    np.testing.assert_array_equal(out["a"], x)
    np.testing.assert_array_equal(out["b"], -x)
    with pytest.raises(UserError, match=f"expected \\[1, {plan.output_length}, 2\\]"):
        run_windows(lambda w: {"a": w[:, :10], "b": w[:, :10]}, plan, x, ("a", "b"))


def test_paper_windows_reproduce_the_official_prediction():
    model, cfg = tiny_model()
    length = 1000
    x = noise(length, cfg.channels)
    est = at_model_rate(model, cfg, x, window="paper")
    left, _ = shapes.context(cfg)
    padded = np.zeros((left + length + cfg.input_length, cfg.channels), np.float32)
    padded[left:left + length] = x
    for i, start in enumerate(range(0, length, cfg.output_length)):
        ref = direct(model, cfg, padded[start:start + cfg.input_length])
        n = min(cfg.output_length, length - start)
        for s in cfg.sources:
            np.testing.assert_allclose(est[s][start:start + n], ref[s][:n], atol=1e-5)
    assert i == 4


def test_models_without_context_keep_their_training_window():
    model, cfg = tiny_model("M1")
    x = noise(500, cfg.channels)
    est = at_model_rate(model, cfg, x, window="default")
    padded = np.zeros((3 * 208, cfg.channels), np.float32)
    padded[:500] = x
    for k in range(3):
        ref = direct(model, cfg, padded[k * 208:(k + 1) * 208])
        n = min(208, 500 - k * 208)
        np.testing.assert_allclose(est["vocals"][k * 208:k * 208 + n], ref["vocals"][:n], atol=1e-5)


def test_rates_and_channels_follow_the_official_code():
    model, cfg = tiny_model()  # stereo model at 22050 Hz
    mono = noise(4410, 1)
    out = separate_array(model, cfg, mono, 44100)
    assert set(out) == set(cfg.sources)
    for v in out.values():
        assert v.shape == (4410, 1) and v.dtype == np.float32 and np.abs(v).max() > 1e-3
    mono_model, mono_cfg = tiny_model("M3")
    stereo = noise(3001, 2)
    out = separate_array(mono_model, mono_cfg, stereo, 16000)
    for v in out.values():
        assert v.shape == (3001, 2)
        np.testing.assert_array_equal(v[:, 0], v[:, 1])  # the mono estimate duplicated back
    # the mono model sees the mean of the channels
    same = separate_array(mono_model, mono_cfg, stereo.mean(axis=1, keepdims=True), 16000)
    np.testing.assert_allclose(out["vocals"][:, :1], same["vocals"], atol=1e-5)


def test_a_six_channel_song_is_the_mean_of_its_channels_as_the_official_downmix():
    model, cfg = tiny_model()  # stereo
    six = noise(3000, 6, seed=4)
    out = separate_array(model, cfg, six, 44100)
    as_mono = separate_array(model, cfg, six.mean(axis=1, keepdims=True), 44100)
    for s in cfg.sources:
        assert out[s].shape == (3000, 6) and np.abs(out[s]).max() > 1e-3
        for k in range(6):
            np.testing.assert_allclose(out[s][:, k], as_mono[s][:, 0], atol=1e-6)


@pytest.mark.parametrize("length,rate", [(1, 48000), (2, 192000), (1, 8000), (3, 22050)])
def test_one_or_two_samples_separate(length, rate):
    model, cfg = tiny_model()
    out = separate_array(model, cfg, noise(length, 2), rate)
    assert all(v.shape == (length, 2) and np.all(np.isfinite(v)) for v in out.values())


def test_silence_gives_silent_stems_and_bad_samples_fail():
    model, cfg = tiny_model()
    out = separate_array(model, cfg, np.zeros((1000, 2), np.float32), 22050)
    assert all(v.shape == (1000, 2) and not v.any() for v in out.values())
    bad = noise(1000, 2)
    bad[10, 1] = np.nan
    with pytest.raises(UserError, match="NaN or infinite"):
        separate_array(model, cfg, bad, 22050)
    bad[10, 1] = np.inf
    with pytest.raises(UserError, match="NaN or infinite"):
        separate_array(model, cfg, bad, 22050)


@pytest.mark.parametrize("rates", [(44100, 22050), (22050, 44100), (48000, 44100), (44100, 8192)])
def test_resampling_gives_librosas_soxr_hq_samples(rates):
    import librosa
    x = noise(100003, 2, seed=7)
    ours = resample(x, *rates)
    theirs = librosa.resample(x, orig_sr=rates[0], target_sr=rates[1], res_type="soxr_hq", axis=0)
    np.testing.assert_array_equal(ours, theirs)
