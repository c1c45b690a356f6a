"""Absurd sizes are refused before any work, from the memory or disk they need (issue 21, item 3)."""

import subprocess
import sys

import pytest

from waveunet_tf import resources
from waveunet_tf.cli import main
from waveunet_tf.commands import synth
from waveunet_tf.errors import UsageError


@pytest.mark.parametrize("argv, message", [
    (["--seconds", "1e9"], "--seconds 1e+09 makes WAV files over 4 GiB, which the format cannot hold; give at most "
                           "24347 seconds"),  # (2**32 - 1 - 44) // 4 bytes per frame // 44100 Hz
    (["--seconds", "inf"], "--seconds must be a finite number of seconds, not inf"),
    (["--tracks", "1000000000"], "writing 1000000002 tracks of 20 s needs "),
])
def test_synth_refuses_what_cannot_fit_before_writing_anything(tmp_path, capsys, argv, message):
    code = main(["synth", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_synth_needs_the_disk_and_memory_worked_out_by_hand(tmp_path, monkeypatch):
    # 3 tracks of 10 s: 441,000 frames, 5 files (4 stems and the mixture) of 4 bytes per frame = 26,460,000 bytes
    monkeypatch.setattr(resources, "available_memory", lambda: None)
    monkeypatch.setattr(resources, "free_disk", lambda path: 26_459_999)
    with pytest.raises(UsageError, match=r"writing 3 tracks of 10 s needs 26.5 MB of disk and .* has 26.5 MB free"):
        synth.check_size(tmp_path, 3, 10)
    monkeypatch.setattr(resources, "free_disk", lambda path: 26_460_000)
    synth.check_size(tmp_path, 3, 10)
    # one track at a time in memory: 441,000 frames of 200 bytes = 88,200,000 bytes
    monkeypatch.setattr(resources, "available_memory", lambda: 88_199_999)
    with pytest.raises(UsageError, match="a track of 10 s needs about 88.2 MB of memory and 88.2 MB is available"):
        synth.check_size(tmp_path, 3, 10)
    monkeypatch.setattr(resources, "available_memory", lambda: 88_200_000)
    synth.check_size(tmp_path, 3, 10)


def test_free_disk_is_that_of_the_nearest_folder_there(tmp_path):
    import shutil
    assert resources.free_disk(tmp_path / "not" / "yet") == pytest.approx(shutil.disk_usage(tmp_path).free,
                                                                           rel=0.01)


def test_bench_inference_refuses_a_song_that_cannot_fit_before_building_a_model():
    script = ("import sys; from waveunet_tf.cli import main; code = main(sys.argv[1:]); "
              "print('tensorflow' in sys.modules); sys.exit(code)")
    res = subprocess.run([sys.executable, "-c", script, "bench", "inference", "--seconds", "1e9"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stdout.strip() == "False", res
    assert res.stderr.splitlines() == [res.stderr.strip()]
    assert "a test song of 1e+09 s needs about " in res.stderr and "give a smaller --seconds" in res.stderr
