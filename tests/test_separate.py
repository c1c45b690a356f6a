"""Whole-song separation: window stitching, decimation phase, rates and channels, the `separate` command."""

import subprocess

import numpy as np
import pytest
import soundfile as sf

from waveunet_tf import build_model, shapes, variant_config
from waveunet_tf.cli import main
from waveunet_tf.errors import UserError
from waveunet_tf.separation import plan_windows, separate_array, separate_model_rate, song_pieces


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
    # reference: one valid window over the whole song, padded with the context in front
    w_in, w_out = shapes.inference_window(cfg, length)
    padded = np.zeros((w_in, cfg.channels), np.float32)
    padded[left:left + length] = x
    ref = {s: v[:length] for s, v in direct(model, cfg, padded).items()}
    for hop in (64, 400, "default"):
        est = separate_model_rate(model, cfg, x, window=hop)
        plan = plan_windows(cfg, length, hop)
        assert plan.count == (length + plan.hop - 1) // plan.hop
        for s in cfg.sources:
            assert est[s].shape == (length, cfg.channels)
            np.testing.assert_allclose(est[s], ref[s], atol=1e-4)
    assert plan_windows(cfg, length, 64).count == 47


def test_paper_windows_reproduce_the_official_prediction():
    model, cfg = tiny_model()
    length = 1000
    x = noise(length, cfg.channels)
    est = separate_model_rate(model, cfg, x, window="paper")
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
    est = separate_model_rate(model, cfg, x, window="default")
    padded = np.zeros((3 * 208, cfg.channels), np.float32)
    padded[:500] = x
    for k in range(3):
        ref = direct(model, cfg, padded[k * 208:(k + 1) * 208])
        n = min(208, 500 - k * 208)
        np.testing.assert_allclose(est["vocals"][k * 208:k * 208 + n], ref["vocals"][:n], atol=1e-5)


def test_song_pieces_join_exactly():
    model, cfg = tiny_model()
    x = noise(2500, cfg.channels)
    whole = separate_model_rate(model, cfg, x, window=96)
    left, right = shapes.context(cfg)
    from waveunet_tf.separation import piece_extra
    parts = {s: [] for s in cfg.sources}
    starts = []
    for start, n, piece in song_pieces(x, left, right + piece_extra(cfg), shapes.step(cfg), 700):
        starts.append(start)
        w = piece.shape[0]
        assert shapes.is_valid_input_length(cfg, w) or start + n == 2500
        padded = np.zeros((shapes.inference_window(cfg, w - left - right)[0], cfg.channels), np.float32)
        padded[:w] = piece
        for s, v in direct(model, cfg, padded).items():
            parts[s].append(v[:n])
    assert starts == [0, 688, 1376, 2064]
    for s in cfg.sources:
        np.testing.assert_allclose(np.concatenate(parts[s]), whole[s], atol=1e-4)


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


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    model, cfg = tiny_model()
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *map(str, args)], check=True)


@pytest.mark.slow
def test_separate_command_on_the_real_stem_file_mp3_and_mono_wav(tiny_keras, tmp_path, capsys):
    import stempeg

    from waveunet_tf.audio import load_audio
    stem = stempeg.example_stem_path()
    mp3, mono = tmp_path / "falcon.mp3", tmp_path / "falcon_mono.wav"
    _ffmpeg("-i", stem, "-map", "0:a:0", "-ar", "32000", mp3)
    _ffmpeg("-i", stem, "-map", "0:a:0", "-ac", "1", mono)
    out = tmp_path / "out"
    assert main(["separate", stem, str(mp3), str(mono), "--model", str(tiny_keras), "-o", str(out)]) == 0
    for path, folder in ((stem, "The Easton Ellises - Falcon 69"), (mp3, "falcon"), (mono, "falcon_mono")):
        audio, rate = load_audio(path)
        for source in ("accompaniment", "vocals"):
            data, r = sf.read(out / folder / f"{source}.wav", dtype="float32", always_2d=True)
            assert r == rate and data.shape == audio.shape, (path, data.shape, audio.shape)
            assert np.abs(data).max() > 1e-3
    assert load_audio(mp3)[1] == 32000 and load_audio(mono)[0].shape[1] == 1
    # an existing output is kept without --force, replaced with it
    before = (out / "falcon" / "vocals.wav").read_bytes()
    capsys.readouterr()
    assert main(["separate", str(mp3), "--model", str(tiny_keras), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists; pass --force" in err
    assert (out / "falcon" / "vocals.wav").read_bytes() == before
    assert main(["separate", str(mp3), "--model", str(tiny_keras), "-o", str(out), "--force",
                 "--window", "paper"]) == 0
    assert (out / "falcon" / "vocals.wav").read_bytes() != before


def test_separate_command_bad_inputs(tiny_keras, tmp_path, capsys):
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("this is not audio\n")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), 22050)
    nan = tmp_path / "nan.wav"
    data = noise(2000, 2)
    data[100] = np.nan
    sf.write(nan, data, 22050, subtype="FLOAT")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((3000, 2), np.float32), 44100)
    out = tmp_path / "out"
    cases = [([str(not_audio)], str(tiny_keras), "not an audio file"),
             ([str(empty)], str(tiny_keras), "holds no audio samples"),
             ([str(nan)], str(tiny_keras), "NaN or infinite"),
             ([str(silent)], str(not_audio), "is not a model"),
             ([str(silent)], str(tmp_path), "is not a model"),
             ([str(tmp_path / "missing.wav")], str(tiny_keras), "does not exist")]
    for audio, model, message in cases:
        capsys.readouterr()
        assert main(["separate", *audio, "--model", model, "-o", str(out)]) == 1, message
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not any(out.rglob("*.wav"))
    assert main(["separate", str(silent), "--model", str(tiny_keras), "-o", str(out)]) == 0
    for source in ("accompaniment", "vocals"):
        stem, rate = sf.read(out / "silent" / f"{source}.wav", always_2d=True)
        assert rate == 44100 and stem.shape == (3000, 2) and not stem.any()
