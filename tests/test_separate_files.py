"""The `separate` command and its files: formats, odd and bad files in a batch, errors that name the file and keep
their cause, two runs into one folder, read-only and full output folders (issue 12 #3 and #9, issue 13)."""

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_separate import noise, tiny_model

from waveunet_tf.audio import load_audio
from waveunet_tf.cli import main
from waveunet_tf.errors import UserError
from waveunet_tf.model_io import load_any_model
from waveunet_tf.separate import separate_array, write_separated

SOURCES = ("accompaniment", "vocals")


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    model, cfg = tiny_model()
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *map(str, args)], check=True)


def _stems(folder):
    return {s: sf.read(folder / f"{s}.wav", dtype="float32", always_2d=True) for s in SOURCES}


@pytest.mark.slow
def test_separate_command_on_the_real_stem_file_mp3_and_mono_wav(tiny_keras, tmp_path, capsys):
    import stempeg
    stem = stempeg.example_stem_path()
    mp3, mono = tmp_path / "falcon.mp3", tmp_path / "falcon_mono.wav"
    _ffmpeg("-i", stem, "-map", "0:a:0", "-ar", "32000", mp3)
    _ffmpeg("-i", stem, "-map", "0:a:0", "-ac", "1", mono)
    out = tmp_path / "out"
    assert main(["separate", stem, str(mp3), str(mono), "--model", str(tiny_keras), "-o", str(out)]) == 0
    for path, folder in ((stem, "The Easton Ellises - Falcon 69"), (mp3, "falcon"), (mono, "falcon_mono")):
        audio, rate = load_audio(path)
        for source in SOURCES:
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


def _bad_files(tmp_path):
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("this is not audio\n")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), 22050)
    nan = tmp_path / "nan.wav"
    data = noise(2000, 2)
    data[100] = np.nan
    sf.write(nan, data, 22050, subtype="FLOAT")
    corrupt = tmp_path / "corrupt.wav"  # a RIFF/WAVE header whose 'fmt ' chunk is cut short
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage here")
    return not_audio, empty, nan, corrupt


def test_separate_command_bad_inputs(tiny_keras, tmp_path, capsys):
    not_audio, empty, nan, corrupt = _bad_files(tmp_path)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((3000, 2), np.float32), 44100)
    out = tmp_path / "out"
    # libsndfile's own words for a corrupt WAV (not "not audio ffmpeg can decode")
    cases = [([str(not_audio)], str(tiny_keras), "not an audio file"),
             ([str(empty)], str(tiny_keras), "holds no audio samples"),
             ([str(nan)], str(tiny_keras), "NaN or infinite"),
             ([str(corrupt)], str(tiny_keras), "Malformed 'fmt ' chunk"),
             ([str(silent)], str(not_audio), "is not a model"),
             ([str(silent)], str(tmp_path), "is not a model"),
             ([str(tmp_path / "missing.wav")], str(tiny_keras), "does not exist")]
    for audio, model, message in cases:
        capsys.readouterr()
        assert main(["separate", *audio, "--model", model, "-o", str(out)]) == 1, message
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
        assert audio[0] in err or model in err  # every message names the file it is about
    assert not any(out.rglob("*.wav"))
    assert main(["separate", str(silent), "--model", str(tiny_keras), "-o", str(out)]) == 0
    for source in SOURCES:
        stem, rate = sf.read(out / "silent" / f"{source}.wav", always_2d=True)
        assert rate == 44100 and stem.shape == (3000, 2) and not stem.any()


def test_a_corrupt_wav_keeps_libsndfiles_error_and_debug_shows_it(tiny_keras, tmp_path, capsys):
    _, _, _, corrupt = _bad_files(tmp_path)
    assert main(["separate", str(corrupt), "--model", str(tiny_keras), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Malformed 'fmt ' chunk" in err and "ffmpeg" not in err and str(corrupt) in err
    assert main(["--debug", "separate", str(corrupt), "--model", str(tiny_keras), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "soundfile.LibsndfileError" in err and "was the direct cause of the following exception" in err


def test_ffprobe_is_checked_before_it_is_run(tmp_path, monkeypatch):
    """A PATH with ffmpeg but no ffprobe: one line saying so, not a FileNotFoundError."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ffmpeg").symlink_to("/usr/bin/ffmpeg")
    m4a = tmp_path / "song.m4a"
    m4a.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(100))
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(UserError, match="ffprobe is not installed") as raised:
        load_audio(m4a)
    assert str(m4a) in str(raised.value)


def test_odd_files_separate_and_a_bad_file_does_not_stop_the_batch(tiny_keras, tmp_path, capsys):
    songs = {"six": (noise(3000, 6), 44100), "one": (noise(1, 2), 48000), "two": (noise(2, 1), 192000),
             "c": (noise(2000, 2), 22050)}
    for name, (audio, rate) in songs.items():
        sf.write(tmp_path / f"{name}.wav", audio, rate, subtype="FLOAT")
    _, _, _, bad = _bad_files(tmp_path)
    files = [tmp_path / "six.wav", tmp_path / "one.wav", bad, tmp_path / "two.wav", tmp_path / "c.wav"]
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["separate", *map(str, files), "--model", str(tiny_keras), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert [line for line in lines if str(bad) in line and "Malformed" in line]
    assert lines[-1].endswith(f"1 of 5 files failed: {bad}")
    assert captured.out.split() == [str(out / n) for n in ("six", "one", "two", "c")]
    for name, (audio, rate) in songs.items():
        for stem, r in _stems(out / name).values():
            assert r == rate and stem.shape == audio.shape
    assert not (out / "corrupt").exists()


def _separate_in_process(model_path, song, out, force, flag=None, wait_for=None):
    """``python -c``: write_separated with a model, announcing ``flag`` once it is separating (after the claim)
    and holding on until ``wait_for`` appears."""
    return textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from waveunet_tf.model_io import load_any_model
        from waveunet_tf.separate import separate_array, write_separated
        model, _ = load_any_model({str(model_path)!r})
        def separate(audio, rate, progress):
            stems = separate_array(model, None, audio, rate)
            Path({str(flag)!r}).touch()
            for _ in range(1200):
                if Path({str(wait_for)!r}).exists():
                    break
                time.sleep(0.1)
            return stems
        write_separated([{str(song)!r}], {str(out)!r}, model.sources, {force}, "separate", separate)
        """)


def test_two_runs_into_one_folder_never_mix_their_stems(tmp_path):
    """Run A claims the song and separates; run B (another model, --force) starts while A is separating: B is
    refused with one line naming A's pid, and the folder holds A's stems only."""
    model_a, cfg = tiny_model(seed=0)
    model_b, _ = tiny_model(seed=1)
    model_a.save(tmp_path / "a.keras")
    model_b.save(tmp_path / "b.keras")
    song = noise(5000, 2, seed=9)
    sf.write(tmp_path / "song.wav", song, 44100, subtype="FLOAT")
    out, flag, go = tmp_path / "out", tmp_path / "a_separating", tmp_path / "b_done"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    a = subprocess.Popen([sys.executable, "-c", _separate_in_process(tmp_path / "a.keras", tmp_path / "song.wav",
                                                                     out, True, flag, go)],
                         env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):
            if flag.exists() or a.poll() is not None:
                break
            time.sleep(0.1)
        assert flag.exists(), a.stderr.read()
        b = subprocess.run([sys.executable, "-m", "waveunet_tf.cli", "separate", str(tmp_path / "song.wav"),
                            "--model", str(tmp_path / "b.keras"), "-o", str(out), "--force"],
                           env=env, capture_output=True, text=True, timeout=300)
        go.touch()
        assert a.wait(timeout=300) == 0, a.stderr.read()
    finally:
        go.touch()
        a.wait(timeout=300)
    assert b.returncode == 1 and len(b.stderr.strip().splitlines()) == 1, b.stderr
    assert "in use by another process" in b.stderr and f"pid {a.pid}" in b.stderr
    expected = separate_array(model_a, cfg, song, 44100)
    for s, (stem, _) in _stems(out / "song").items():
        np.testing.assert_allclose(stem, expected[s], atol=1e-5)
    assert sorted(p.name for p in (out / "song").iterdir() if not p.name.startswith(".stems.lock")) == \
        ["accompaniment.wav", "vocals.wav"]


@pytest.mark.slow
def test_two_separate_commands_started_together_leave_one_models_stems(tmp_path):
    """The issue's report: two `waveunet separate --force` 0.2 s apart with different models."""
    models = [tiny_model(seed=s) for s in (0, 1)]
    for i, (m, _) in enumerate(models):
        m.save(tmp_path / f"{i}.keras")
    song = noise(30000, 2, seed=3)
    sf.write(tmp_path / "song.wav", song, 22050, subtype="FLOAT")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = []
    for i in range(2):
        runs.append(subprocess.Popen([sys.executable, "-m", "waveunet_tf.cli", "separate", str(tmp_path / "song.wav"),
                                      "--model", str(tmp_path / f"{i}.keras"), "-o", str(tmp_path / "out"),
                                      "--force"], env=env, stderr=subprocess.PIPE, text=True))
        time.sleep(0.2)
    codes = [r.wait(timeout=300) for r in runs]
    errors = [r.stderr.read() for r in runs]
    assert 0 in codes and all(c == 0 or "in use by another process" in e for c, e in zip(codes, errors)), errors
    got = _stems(tmp_path / "out" / "song")
    matches = []
    for m, cfg in models:
        ref = separate_array(m, cfg, song, 22050)
        matches.append([np.allclose(got[s][0], ref[s], atol=1e-5) for s in SOURCES])
    assert [True, True] in matches, matches  # both stems from one model


@contextlib.contextmanager
def _mounted(kind, target, source=None, size=None):
    """A tmpfs of ``size`` or a read-only bind mount of ``source`` at ``target``; skips when mounting is not
    permitted here (it needs root or CAP_SYS_ADMIN: as root, chmod would not stop a write)."""
    target.mkdir(parents=True, exist_ok=True)
    cmds = ([["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)]] if kind == "tmpfs" else
            [["mount", "--bind", str(source), str(target)], ["mount", "-o", "remount,bind,ro", str(target)]])
    for i, cmd in enumerate(cmds):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            if i:
                subprocess.run(["umount", str(target)], capture_output=True)
            pytest.skip(f"cannot mount a {kind} here ({' '.join(cmd[:3])}: {res.stderr.strip()}); the test needs "
                        "root or CAP_SYS_ADMIN")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def _never_called(calls):
    def separate(audio, rate, progress):
        calls.append(rate)
        raise AssertionError("separated although the output folder cannot take the stems")
    return separate


def test_a_read_only_output_folder_is_found_before_the_compute(tiny_keras, tmp_path, capsys):
    sf.write(tmp_path / "song.wav", noise(2000, 2), 22050)
    (tmp_path / "src").mkdir()
    with _mounted("bind", tmp_path / "ro", source=tmp_path / "src") as ro:
        calls = []
        with pytest.raises(UserError, match="Read-only file system"):
            write_separated([tmp_path / "song.wav"], ro / "out", SOURCES, False, "separate", _never_called(calls))
        assert calls == []
        capsys.readouterr()
        # the command checks the folder before it even loads the model (a model path that is no model)
        assert main(["separate", str(tmp_path / "song.wav"), "--model", str(tmp_path), "-o", str(ro / "out")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot write to the output folder" in err and str(ro / "out") in err


def test_a_full_output_folder_is_found_before_the_compute(tmp_path):
    song = noise(20000, 2)  # two float32 stems of 160 kB each
    sf.write(tmp_path / "song.wav", song, 22050, subtype="FLOAT")
    with _mounted("tmpfs", tmp_path / "small", size="256k") as small:
        calls = []
        with pytest.raises(UserError, match="not enough space") as raised:
            write_separated([tmp_path / "song.wav"], small / "out", SOURCES, False, "separate", _never_called(calls))
        assert calls == [] and str(tmp_path / "song.wav") in str(raised.value)
        assert not [p for p in small.rglob("*") if p.is_file()]


def test_a_disk_full_while_writing_leaves_no_stems_and_no_temporary_file(tiny_keras, tmp_path):
    """The disk fills up after the space check (another writer): the first stem fits, the second does not."""
    song = noise(8000, 2)  # 64 kB per float32 stem
    sf.write(tmp_path / "song.wav", song, 22050, subtype="FLOAT")
    model, _ = load_any_model(tiny_keras)
    with _mounted("tmpfs", tmp_path / "small", size="1m") as small:
        def separate_then_fill(audio, rate, progress):
            stems = separate_array(model, None, audio, rate)
            free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
            (small / "filler").write_bytes(bytes(free - 96 * 1024))  # room for one stem, not two
            return stems

        with pytest.raises(UserError, match="No space left on device") as raised:
            write_separated([tmp_path / "song.wav"], small / "out", SOURCES, False, "separate", separate_then_fill)
        assert str(small / "out" / "song") in str(raised.value) and str(tmp_path / "song.wav") in str(raised.value)
        left = [p.relative_to(small) for p in small.rglob("*") if p.name not in ("filler", ".stems.lock")]
        assert left == [Path("out"), Path("out/song")], left  # no stem, no temporary file or folder
        (small / "filler").unlink()  # space again: the same command now writes both stems
        assert write_separated([tmp_path / "song.wav"], small / "out", SOURCES, False, "separate",
                               lambda audio, rate, progress: separate_array(model, None, audio, rate))
        assert sorted(p.name for p in (small / "out" / "song").glob("*.wav")) == ["accompaniment.wav", "vocals.wav"]


def test_leftovers_of_a_killed_run_are_removed_when_the_song_is_claimed_again(tiny_keras, tmp_path, capsys):
    """A run killed while writing leaves its temporary stem folder (a .partial name) in OUT/<song>/; the next run
    that claims the song removes it, and nothing of the user's."""
    sf.write(tmp_path / "song.wav", noise(2000, 2), 22050, subtype="FLOAT")
    folder = tmp_path / "out" / "song"
    leftover = folder / ".stems.k9x2ab.partial"
    leftover.mkdir(parents=True)
    (leftover / "vocals.wav").write_bytes(b"half a stem")
    (folder / "notes.txt").write_text("mine\n")
    assert main(["separate", str(tmp_path / "song.wav"), "--model", str(tiny_keras), "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [".stems.lock", "accompaniment.wav", "notes.txt", "vocals.wav"]


def test_a_run_killed_while_moving_its_stems_in_leaves_no_mixed_set(tiny_keras, tmp_path, capsys):
    """kill -9 between two stem renames: the song folder holds a new vocals.wav beside an old
    accompaniment.wav and the marker listing the set being moved. The next run claiming the song removes that
    set (no --force needed: it is not a result of one run) and writes its own, complete."""
    sf.write(tmp_path / "song.wav", noise(2000, 2), 22050, subtype="FLOAT")
    folder = tmp_path / "out" / "song"
    folder.mkdir(parents=True)
    for s in SOURCES:
        sf.write(folder / f"{s}.wav", np.full((10, 2), 0.5, np.float32), 22050, subtype="FLOAT")
    (folder / ".stems.moving").write_text("accompaniment.wav\nvocals.wav\n")
    (folder / "notes.txt").write_text("mine\n")
    assert main(["separate", str(tmp_path / "song.wav"), "--model", str(tiny_keras), "-o", str(tmp_path / "out")]) == 0
    assert "half moved" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == [".stems.lock", "accompaniment.wav", "notes.txt", "vocals.wav"]
    for data, _ in _stems(folder).values():
        assert data.shape == (2000, 2)  # both from the new run
