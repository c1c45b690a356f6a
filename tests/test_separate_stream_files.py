"""`separate` on files, streamed (issue 18) and what a careful new user met (issue 21 items 5-8): refusals before
any download, no half set after a failed write, messages that say what to do, progress in logs, truncated and
corrupt files, kill -9 in the middle of a song."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf
from test_separate import noise
from test_separate_files import SOURCES, _mounted, tiny_keras  # noqa: F401 (a fixture)

import waveunet_tf
from waveunet_tf.cli import main

def _run(capsys, *args):
    capsys.readouterr()
    code = main(["separate", *map(str, args)])
    return code, capsys.readouterr().err


def _one_line(err):
    return err.count("\n") == 1 and "Traceback" not in err


def test_existing_stems_are_refused_before_an_official_model_is_downloaded(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("WAVEUNET_CACHE", str(cache))
    monkeypatch.setenv("WAVEUNET_OFFICIAL_URL", "http://127.0.0.1:9/models.zip")  # would fail, if it were tried
    sf.write(tmp_path / "song.wav", noise(1000, 2), 44100)
    (tmp_path / "out" / "song").mkdir(parents=True)
    (tmp_path / "out" / "song" / "vocals.wav").write_bytes(b"the user's stem")
    code, err = _run(capsys, tmp_path / "song.wav", "--model", "official:M6", "-o", tmp_path / "out")
    assert code == 1 and _one_line(err) and "vocals.wav exists; pass --force" in err, err
    assert not cache.exists() or not any(cache.rglob("*"))
    # a missing input is refused before the download too
    code, err = _run(capsys, tmp_path / "missing.wav", "--model", "official:M6", "-o", tmp_path / "out2")
    assert code == 1 and "missing.wav does not exist" in err and (not cache.exists() or not any(cache.rglob("*")))


def test_a_stem_name_taken_by_a_folder_replaces_nothing_and_the_rerun_works(tiny_keras, tmp_path, capsys):
    sf.write(tmp_path / "song.wav", noise(2000, 2), 22050)
    folder = tmp_path / "out" / "song"
    (folder / "vocals.wav").mkdir(parents=True)
    (folder / "accompaniment.wav").write_bytes(b"old stem")
    code, err = _run(capsys, tmp_path / "song.wav", "--model", tiny_keras, "-o", tmp_path / "out", "--force")
    assert code == 1 and _one_line(err) and "vocals.wav is a folder" in err, err
    assert (folder / "accompaniment.wav").read_bytes() == b"old stem"
    assert sorted(p.name for p in folder.iterdir()) == ["accompaniment.wav", "vocals.wav"]
    (folder / "vocals.wav").rmdir()
    code, err = _run(capsys, tmp_path / "song.wav", "--model", tiny_keras, "-o", tmp_path / "out", "--force")
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == [".stems.lock", "accompaniment.wav", "vocals.wav"]


def test_outputs_in_the_way_are_named_with_what_to_do(tiny_keras, tmp_path, capsys):
    sf.write(tmp_path / "song.wav", noise(2000, 2), 22050)
    (tmp_path / "ofile").write_text("mine")
    code, err = _run(capsys, tmp_path / "song.wav", "--model", tiny_keras, "-o", tmp_path / "ofile")
    assert code == 2 and _one_line(err) and "is a file; give the folder" in err, err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "song").write_text("mine")
    code, err = _run(capsys, tmp_path / "song.wav", "--model", tiny_keras, "-o", tmp_path / "out")
    assert code == 1 and _one_line(err) and "out/song is a file" in err and "choose another -o" in err, err
    assert (tmp_path / "ofile").read_text() == "mine" and (tmp_path / "out" / "song").read_text() == "mine"


def test_a_read_only_song_folder_says_what_to_do(tiny_keras, tmp_path, capsys):
    sf.write(tmp_path / "song.wav", noise(2000, 2), 22050)
    (tmp_path / "src").mkdir()
    with _mounted("bind", tmp_path / "out" / "song", source=tmp_path / "src"):
        code, err = _run(capsys, tmp_path / "song.wav", "--model", tiny_keras, "-o", tmp_path / "out")
    assert code == 1 and _one_line(err) and "make the folder writable or choose another -o" in err, err
    assert str(tmp_path / "song.wav") in err and str(tmp_path / "out" / "song") in err


def test_text_named_mp3_is_one_line_without_the_decoders_notes(tiny_keras, tmp_path, capfd):
    """capfd: what the mp3 decoder writes to file descriptor 2 itself is captured too."""
    (tmp_path / "text.mp3").write_text("these are my lyrics, not audio\n" * 20)
    code, err = _run(capfd, tmp_path / "text.mp3", "--model", tiny_keras, "-o", tmp_path / "out")
    assert code == 1 and _one_line(err), err
    assert "text.mp3 is not an audio file" in err and "does not exist" not in err


def test_progress_in_a_log_is_a_few_lines_with_the_real_time_factor(tiny_keras, tmp_path, capsys):
    sf.write(tmp_path / "song.wav", noise(8000, 2), 22050)
    code, err = _run(capsys, tmp_path / "song.wav", "--model", tiny_keras, "-o", tmp_path / "out")
    assert code == 0 and "\r" not in err  # no bar drawn into a file
    lines = err.strip().splitlines()
    assert "x real time" in lines[-1] and "0.4 s of audio" in lines[-1] and len(lines) <= 4, err


@pytest.mark.parametrize("kind", ["wav", "mp3"])
def test_a_truncated_file_warns_how_much_was_decoded(tiny_keras, tmp_path, capsys, kind):
    whole = tmp_path / "whole.wav"
    sf.write(whole, noise(4 * 22050, 2), 22050, subtype="FLOAT")
    if kind == "mp3":
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(whole), str(tmp_path / "whole.mp3")], check=True)
        whole = tmp_path / "whole.mp3"
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(data[:len(data) // 2])
    code, err = _run(capsys, cut, "--model", tiny_keras, "-o", tmp_path / "out")
    assert code == 0, err
    assert f"{cut} is truncated: its header promises 0:04.0, only 0:02.0 could be decoded" in err, err
    stem, _ = sf.read(tmp_path / "out" / "cut" / "vocals.wav")
    assert abs(len(stem) - 2 * 22050) < 0.05 * 22050


def test_a_corrupt_block_in_the_middle_names_the_file_and_the_time(tiny_keras, tmp_path, capsys):
    song = tmp_path / "long.flac"
    sf.write(song, noise(6 * 44100, 2), 44100)
    data = bytearray(song.read_bytes())
    data[len(data) // 2:len(data) // 2 + 20000] = bytes(20000)
    song.write_bytes(bytes(data))
    code, err = _run(capsys, song, "--model", tiny_keras, "-o", tmp_path / "out")
    assert code == 1 and _one_line(err) and f"cannot decode {song} at 0:0" in err, err
    assert "at 0:00.0" not in err and not any((tmp_path / "out").rglob("*.wav"))
    nan = noise(3 * 22050, 2)
    nan[2 * 22050 + 5] = np.inf
    sf.write(tmp_path / "nan.wav", nan, 22050, subtype="FLOAT")
    code, err = _run(capsys, tmp_path / "nan.wav", "--model", tiny_keras, "-o", tmp_path / "out")
    assert code == 1 and "nan.wav holds NaN or infinite samples (at 0:02.0)" in err, err


def test_kill_9_in_the_middle_of_a_song_leaves_no_stem_and_the_rerun_succeeds(tiny_keras, tmp_path, capsys):
    """The run is killed after its first stem block went to disk: the song folder holds no stem (only the
    temporary folder, a .partial name), and the next run writes the whole set."""
    song = noise(30000, 2, seed=6)
    sf.write(tmp_path / "song.wav", song, 22050, subtype="FLOAT")
    out, flag = tmp_path / "out", tmp_path / "writing"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from waveunet_tf import Separator, stems
        write = stems.StemWriter.write
        def write_then_hang(self, block):
            write(self, block)
            for f in self._files.values():
                f.flush()
            Path({str(flag)!r}).touch()
            time.sleep(600)
        stems.StemWriter.write = write_then_hang
        Separator({str(tiny_keras)!r}, window=64).separate_file({str(tmp_path / "song.wav")!r}, {str(out)!r})
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            stderr=subprocess.PIPE)
    try:
        for _ in range(3000):
            if flag.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert flag.exists(), proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    folder = out / "song"
    assert not list(folder.glob("*.wav"))
    partial = [p for p in folder.iterdir() if p.name != ".stems.lock"]
    assert len(partial) == 1 and ".partial" in partial[0].name and list(partial[0].glob("*.wav"))
    code, err = _run(capsys, tmp_path / "song.wav", "--model", tiny_keras, "-o", out)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == [".stems.lock", "accompaniment.wav", "vocals.wav"]
    want = waveunet_tf.Separator(tiny_keras).separate(song, 22050)
    for s in SOURCES:
        np.testing.assert_allclose(sf.read(folder / f"{s}.wav", dtype="float32")[0], want[s], atol=1e-5)


def test_a_disk_full_in_the_middle_of_a_streamed_song_leaves_nothing(tiny_keras, tmp_path, monkeypatch, capsys):
    """The space check passed (another writer filled the disk since): the stems stop mid-song with one line,
    no stem and no temporary file is left, and the rerun with room succeeds."""
    import waveunet_tf.separator
    monkeypatch.setattr(waveunet_tf.separator, "check_space", lambda *a: None)
    sf.write(tmp_path / "song.wav", noise(200000, 2), 22050)  # two 1.6 MB float stems: more than the disk holds
    with _mounted("tmpfs", tmp_path / "small", size="1m") as small:
        code, err = _run(capsys, tmp_path / "song.wav", "--model", tiny_keras, "-o", small / "out")
        last = err.strip().splitlines()[-1]  # after the progress lines of the part that was separated
        assert code == 1 and "Traceback" not in err and "No space left on device" in last, err
        assert str(tmp_path / "song.wav") in last and err.count("error") == 1
        left = sorted(str(p.relative_to(small)) for p in small.rglob("*") if p.name != ".stems.lock")
        assert left == ["out", "out/song"], left
    with _mounted("tmpfs", tmp_path / "big", size="8m") as big:
        code, err = _run(capsys, tmp_path / "song.wav", "--model", tiny_keras, "-o", big / "out")
        assert code == 0 and sorted(p.name for p in (big / "out" / "song").glob("*.wav")) == \
            ["accompaniment.wav", "vocals.wav"]
