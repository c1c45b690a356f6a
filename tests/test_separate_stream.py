"""Streaming separation and the Separator API (issue 18): blocks of any size give the in-memory stems, which are
the stems of the pre-streaming path (one-shot resampling and `run_windows`); the latency is what the stream
really waits for; the CLI writes the Separator's stems."""

import numpy as np
import pytest
import soundfile as sf
from test_separate import noise, tiny_model

import waveunet_tf
from waveunet_tf import separator
from waveunet_tf.audio import resample
from waveunet_tf.cli import main
from waveunet_tf.model_io import LoadedModel
from waveunet_tf.separate import from_model_output, plan_for, run_windows, to_model_input

HOP = 64  # kept samples per window at the model's rate: many windows in a short song


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, cfg = tiny_model()
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return LoadedModel.of_keras(model, cfg), path


def _before_streaming(loaded, audio, rate, window):
    """The pre-streaming path: the whole song resampled at once, `run_windows` over the plan, each source
    resampled back at once."""
    x = to_model_input(audio, rate, loaded.sample_rate, loaded.channels)
    est = run_windows(loaded.predict, plan_for(loaded, len(x), window), x, loaded.sources)
    return {s: from_model_output(est[s], loaded.sample_rate, rate, len(audio), audio.shape[1]) for s in est}


def _joined(parts, sources):
    return {s: np.concatenate([p[s] for p in parts]) for s in sources}


@pytest.mark.parametrize("rate,channels,window", [(48000, 2, HOP), (22050, 1, HOP), (44100, 6, "default"),
                                                  (16000, 2, "paper")])
def test_separate_equals_the_pre_streaming_path(tiny, rate, channels, window):
    loaded, _ = tiny
    audio = noise(3001, channels, seed=rate)
    got = waveunet_tf.Separator(loaded, window=window).separate(audio, rate)
    want = _before_streaming(loaded, audio, rate, window)
    for s in loaded.sources:
        assert got[s].shape == (3001, channels) and got[s].dtype == np.float32
        assert np.abs(got[s]).max() > 1e-3
        np.testing.assert_allclose(got[s], want[s], atol=1e-5)


@pytest.mark.parametrize("rate", [48000, 22050])
def test_separate_feeds_the_song_in_blocks_and_gives_the_one_block_stems(tiny, rate, monkeypatch):
    # separate() streams a song held in memory in blocks (so it holds one window, not the song at the model's
    # rate and copies of the stems): the stems are those of the song given as one block, to the bit
    loaded, _ = tiny
    sep = waveunet_tf.Separator(loaded, window=HOP)
    audio = noise(5003, 2, seed=5)
    one_block = _joined(list(sep.stream([audio], rate, length=len(audio))), sep.sources)
    monkeypatch.setattr(separator, "IN_MEMORY_BLOCK", 257)
    got = sep.separate(audio, rate)
    for s in sep.sources:
        assert got[s].shape == audio.shape and np.abs(got[s]).max() > 1e-3
        np.testing.assert_array_equal(got[s], one_block[s])


@pytest.mark.parametrize("rate", [48000, 22050])
def test_stream_in_one_second_and_random_blocks_equals_separate(tiny, rate):
    loaded, _ = tiny
    sep = waveunet_tf.Separator(loaded, window=HOP)
    audio = noise(int(2.3 * rate), 2, seed=3)
    whole = sep.separate(audio, rate)
    seconds = [audio[i:i + rate] for i in range(0, len(audio), rate)]
    rng = np.random.RandomState(0)
    cuts = np.cumsum(rng.choice([0, 1, 1, 2, 7, 300, 2000, 9000], size=len(audio) // 500))
    cuts = np.unique(np.clip(cuts, 0, len(audio)))
    randoms = np.split(audio, cuts)
    assert any(len(b) == 1 for b in randoms) and any(len(b) == 0 for b in randoms)
    for blocks in (seconds, randoms):
        got = _joined(list(sep.stream(iter(blocks), rate)), sep.sources)
        for s in sep.sources:
            assert got[s].shape == audio.shape
            np.testing.assert_allclose(got[s], whole[s], atol=1e-5)


@pytest.mark.parametrize("rate", [22050, 48000])
def test_latency_is_the_input_the_stream_waits_for(tiny, rate):
    """Samples fed one at a time: the first stem sample comes exactly after ``latency(rate)`` of them."""
    loaded, _ = tiny
    sep = waveunet_tf.Separator(loaded, window=HOP)
    fed = [0]

    def one_by_one():
        for x in noise(rate // 2, 2, seed=5):
            fed[0] += 1
            yield x[None]

    next(sep.stream(one_by_one(), rate))
    assert fed[0] == sep.latency(rate)
    # by hand, at the model's rate: the first window ends HOP kept samples + its right context after the start
    assert sep.latency(loaded.sample_rate) == HOP + loaded.geometry.extra + loaded.geometry.right


def test_the_cli_writes_the_separators_stems(tiny, tmp_path):
    loaded, path = tiny
    audio = noise(5000, 2, seed=4)
    sf.write(tmp_path / "song.wav", audio, 44100, subtype="FLOAT")
    assert main(["separate", str(tmp_path / "song.wav"), "--model", str(path), "-o", str(tmp_path / "out")]) == 0
    sep = waveunet_tf.Separator(path)
    want = sep.separate(audio, 44100)
    for s in sep.sources:
        stem, rate = sf.read(tmp_path / "out" / "song" / f"{s}.wav", dtype="float32", always_2d=True)
        assert rate == 44100
        np.testing.assert_allclose(stem, want[s], atol=1e-5)


def test_silent_windows_give_silent_stems_and_the_rest_is_separated(tiny):
    loaded, _ = tiny
    audio = np.zeros((4000, 2), np.float32)
    audio[3000:] = noise(1000, 2)
    out = waveunet_tf.Separator(loaded, window=HOP).separate(audio, loaded.sample_rate)
    for s in loaded.sources:
        assert not out[s][:2000].any() and np.abs(out[s][3100:]).max() > 1e-3


def test_resampling_in_blocks_equals_resampling_at_once():
    from waveunet_tf.streaming import Resampler
    x = noise(30000, 2, seed=8)
    for rates in ((44100, 22050), (22050, 48000)):
        r = Resampler(*rates, 2)
        parts = [r(x[i:i + 777]) for i in range(0, len(x), 777)] + [r(x[:0], last=True)]
        np.testing.assert_array_equal(np.concatenate(parts), resample(x, *rates))
