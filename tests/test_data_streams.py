"""training_dataset / evaluation_dataset: shapes, exact excerpts, zero padding, task views, seeds."""

import logging

import numpy as np
import pytest

from data_pipeline import (evaluation_dataset, evaluation_steps, make_synthetic_dataset, open_cache, prepare_cache,
                           training_dataset)
from waveunet_tf import build_model, shapes
from waveunet_tf.errors import UserError

pytest_plugins = ["conftest_data"]


def batches(ds, n):
    it = iter(ds)
    return [tuple(x.numpy() if not isinstance(x, dict) else {k: v.numpy() for k, v in x.items()}
                  for x in next(it)) for _ in range(n)]


def train_tracks(cache):
    return open_cache(cache).tracks_in("train")


@pytest.mark.parametrize("name,channels,sources", [
    ("M4", 2, ("accompaniment", "vocals")),
    ("M6", 2, ("bass", "drums", "other", "vocals")),
    ("M1", 1, ("accompaniment", "vocals")),  # mono, no context
])
def test_training_shapes_and_dtypes(synth_cache, name, channels, sources, data):
    cfg = data.tiny(name)
    assert cfg.channels == channels and cfg.sources == sources
    ds = training_dataset(synth_cache, cfg, 3, seed=0)
    mix_spec, tgt_spec = ds.element_spec
    assert tuple(mix_spec.shape) == (3, cfg.input_length, channels)
    assert list(tgt_spec) == list(sources)
    (mix, tgt), = batches(ds, 1)
    assert mix.dtype == np.float32 and mix.shape == (3, cfg.input_length, channels)
    for s in sources:
        assert tgt[s].dtype == np.float32 and tgt[s].shape == (3, cfg.output_length, channels)
    assert np.abs(mix).max() > 0.01  # real audio, not silence


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("name", ["M4", "M6", "M1"])
def test_targets_are_the_centre_of_the_mixture_window(synth_cache, name, augment, data):
    cfg = data.tiny(name)
    left, _ = shapes.context(cfg)
    for mix, tgt in batches(training_dataset(synth_cache, cfg, 4, seed=5, augment=augment), 2):
        centre = mix[:, left:left + cfg.output_length]
        np.testing.assert_allclose(sum(tgt.values()), centre, atol=1e-6)


def test_without_augmentation_targets_are_the_cached_stems(synth_cache, data):
    """Voice task: find each vocals target in the cache; accompaniment and the whole mixture window match there."""
    cfg = data.tiny("M4")
    left, _ = shapes.context(cfg)
    tracks = train_tracks(synth_cache)
    stems = {t["name"]: {s: data.cached(synth_cache, t, s) for s in ("bass", "drums", "other", "vocals")}
             for t in tracks}
    found = 0
    for mix, tgt in batches(training_dataset(synth_cache, cfg, 4, seed=1, augment=False), 2):
        for b in range(len(mix)):
            if not np.any(tgt["vocals"][b]):  # a rest in the vocals: no unique position to find
                continue
            where = [(name, data.locate(tgt["vocals"][b], st["vocals"])) for name, st in stems.items()]
            where = [(name, pos) for name, pos in where if pos is not None]
            assert where, "a vocals target that is nowhere in the cache"
            if len(where) != 1:  # a window of silence in the vocals can occur in two tracks; skip it
                continue
            name, pos = where[0]
            st = stems[name]
            acc = np.clip(st["bass"] + st["drums"] + st["other"], -1, 1)
            np.testing.assert_array_equal(tgt["accompaniment"][b], acc[pos:pos + cfg.output_length])
            # the input window is the output window plus the context on both sides (zero-padded outside)
            full = np.pad(acc + st["vocals"], [(left, cfg.input_length), (0, 0)])
            np.testing.assert_allclose(mix[b], full[pos:pos + cfg.input_length], atol=1e-6)
            found += 1
    assert found >= 4


def test_gains_are_in_the_papers_range(synth_cache, data):
    """With augmentation each source is the cached one times one gain in [0.7, 1.0]."""
    cfg = data.tiny("M6")
    (_, plain), = batches(training_dataset(synth_cache, cfg, 8, seed=2, augment=False), 1)
    (_, aug), = batches(training_dataset(synth_cache, cfg, 8, seed=2, augment=True), 1)
    gains = []
    for s in cfg.sources:
        for b in range(8):
            ref = plain[s][b]
            if np.abs(ref).max() < 1e-3:
                continue
            g = float(np.sum(aug[s][b] * ref) / np.sum(ref * ref))
            np.testing.assert_allclose(aug[s][b], g * ref, atol=1e-6)  # one gain per source and window
            gains.append(g)
    assert len(gains) >= 16
    assert 0.7 - 1e-6 <= min(gains) and max(gains) <= 1.0 + 1e-6
    assert max(gains) - min(gains) > 0.1  # drawn, not constant


def test_mono_reads_the_mean_of_the_channels(synth_cache, data):
    cfg_mono, cfg_stereo = data.tiny("M4", channels=1), data.tiny("M4")
    assert cfg_mono.output_length == cfg_stereo.output_length
    # same seed, no augmentation: the same track and position (the draw does not depend on channels)
    (_, mono), = batches(training_dataset(synth_cache, cfg_mono, 4, seed=9, augment=False), 1)
    (_, stereo), = batches(training_dataset(synth_cache, cfg_stereo, 4, seed=9, augment=False), 1)
    np.testing.assert_allclose(mono["vocals"][..., 0], stereo["vocals"].mean(axis=-1), atol=1e-7)
    # the synthetic stems never clip, so the mono accompaniment is the mean of the stereo one
    np.testing.assert_allclose(mono["accompaniment"][..., 0], stereo["accompaniment"].mean(axis=-1), atol=1e-6)
    assert not np.allclose(stereo["vocals"][..., 0], stereo["vocals"][..., 1])  # panned: the mean matters


def test_seed_reproduces_the_stream(synth_cache, data):
    cfg = data.tiny("M4")
    a = batches(training_dataset(synth_cache, cfg, 4, seed=11), 3)
    b = batches(training_dataset(synth_cache, cfg, 4, seed=11), 3)
    c = batches(training_dataset(synth_cache, cfg, 4, seed=12), 3)
    for (ma, _), (mb, _), (mc, _) in zip(a, b, c):
        np.testing.assert_array_equal(ma, mb)
        assert not np.array_equal(ma, mc)
    d = batches(training_dataset(synth_cache, cfg, 4), 1)  # seed=None: a random stream
    assert not np.array_equal(d[0][0], a[0][0])


def test_channel_swap_and_remix_keep_the_mixture_a_sum(synth_cache, data):
    cfg = data.tiny("M4", augment_channel_swap=True, augment_remix=True)
    left, _ = shapes.context(cfg)
    for mix, tgt in batches(training_dataset(synth_cache, cfg, 8, seed=4), 2):
        np.testing.assert_allclose(sum(tgt.values()), mix[:, left:left + cfg.output_length], atol=1e-6)


def test_track_shorter_than_the_window_is_zero_padded_at_both_ends(synth_cache, data):
    cfg = data.tiny("M4", requested_output=20000)  # input and output longer than the 2 s (16000-sample) tracks
    left, _ = shapes.context(cfg)
    length = train_tracks(synth_cache)[0]["length"]
    assert cfg.output_length > length
    (mix, tgt), = batches(training_dataset(synth_cache, cfg, 2, seed=0, augment=False), 1)
    # the output window starts at the track's first sample: context before it and everything after are zeros
    assert np.all(mix[:, :left] == 0) and np.all(mix[:, left + length:] == 0)
    assert np.abs(mix[:, left:left + 100]).max() > 0 and np.abs(mix[:, left + length - 100:left + length]).max() > 0
    for s in cfg.sources:
        assert np.all(tgt[s][:, length:] == 0)


def test_evaluation_covers_every_window_in_order(synth_cache, data):
    cfg = data.tiny("M4")
    left, _ = shapes.context(cfg)
    tracks = open_cache(synth_cache).tracks_in("valid")
    ds = evaluation_dataset(synth_cache, cfg, split="valid", batch_size=5)
    steps = evaluation_steps(synth_cache, cfg, split="valid", batch_size=5)
    got = batches(ds, steps)
    assert int(ds.cardinality()) == steps == len(got)
    mix = np.concatenate([m for m, _ in got])
    voc = np.concatenate([t["vocals"] for _, t in got])
    acc = np.concatenate([t["accompaniment"] for _, t in got])
    out = cfg.output_length
    i = 0
    for track in tracks:
        n = -(-track["length"] // out)
        length = track["length"]
        want_voc = np.pad(data.cached(synth_cache, track, "vocals"), [(0, n * out - length), (0, 0)])
        np.testing.assert_array_equal(voc[i:i + n].reshape(-1, 2), want_voc)
        st = [data.cached(synth_cache, track, s) for s in ("bass", "drums", "other")]
        want_acc = np.pad(np.clip(sum(st), -1, 1), [(0, n * out - length), (0, 0)])
        np.testing.assert_array_equal(acc[i:i + n].reshape(-1, 2), want_acc)
        # the mixture is the cached mixture file with context, zero-padded past both ends
        mixture = np.pad(data.cached(synth_cache, track, "mixture"), [(left, cfg.input_length + n * out), (0, 0)])
        for k in (0, n - 1):
            np.testing.assert_array_equal(mix[i + k], mixture[k * out:k * out + cfg.input_length])
        assert np.all(mix[i, :left] == 0)
        i += n
    assert i == len(voc)


def test_cache_and_config_must_agree(synth_cache, tmp_path, data):
    with pytest.raises(UserError, match=f"holds audio at {data.RATE} Hz but .* needs 22050 Hz"):
        training_dataset(synth_cache, data.tiny("M4", sample_rate=22050), 2)
    with pytest.raises(UserError, match="cannot give .* its tracks lack piano.wav;"):
        training_dataset(synth_cache, data.tiny("M4", sources=("piano", "vocals")), 2)
    with pytest.raises(UserError, match="not a prepared cache"):
        training_dataset(tmp_path, data.tiny("M4"), 2)
    with pytest.raises(UserError, match="does not exist"):
        evaluation_dataset(tmp_path / "nowhere", data.tiny("M4"))


def test_a_cache_without_valid_tracks_says_so(tmp_path, data):
    root = make_synthetic_dataset(tmp_path / "root", tracks=1, test_tracks=0, seconds=0.5)
    prepare_cache(root, tmp_path / "cache", data.RATE, wav=True)
    with pytest.raises(UserError, match="has no valid tracks"):
        evaluation_dataset(tmp_path / "cache", data.tiny("M4"))


def test_mono_files_feed_a_stereo_model_duplicated(tmp_path, caplog, data):
    import soundfile as sf
    rng = np.random.default_rng(0)
    folder = tmp_path / "root" / "train" / "mono song"
    folder.mkdir(parents=True)
    for stem in ("vocals", "drums", "bass", "other"):
        sf.write(str(folder / f"{stem}.wav"), rng.uniform(-0.2, 0.2, 4000).astype(np.float32), data.RATE,
                 subtype="PCM_16")
    prepare_cache(tmp_path / "root", tmp_path / "cache", data.RATE, wav=True)
    with caplog.at_level(logging.WARNING, logger="data_pipeline"):
        ds = training_dataset(tmp_path / "cache", data.tiny("M4"), 2, seed=0)
    assert "duplicated" in caplog.text
    (mix, tgt), = batches(ds, 1)
    np.testing.assert_array_equal(mix[..., 0], mix[..., 1])
    np.testing.assert_array_equal(tgt["vocals"][..., 0], tgt["vocals"][..., 1])


@pytest.mark.slow
def test_feeds_model_fit(synth_cache, data):
    """The element structure is what the built model takes and returns: keras fits and validates on it."""
    import keras
    cfg = data.tiny("M4")
    model = build_model(cfg)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss={s: "mse" for s in cfg.sources})
    valid = evaluation_dataset(synth_cache, cfg, split="valid", batch_size=16)
    history = model.fit(training_dataset(synth_cache, cfg, 4, seed=0), steps_per_epoch=3, epochs=1,
                        validation_data=valid, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and np.isfinite(history.history["val_loss"][0])
