"""files.py, the writing rules every command relies on (issue 12, defects 3, 5, 12): probes that touch nothing
of the user's, the umask's modes, partial-write leftovers, and process locks."""

import os
import stat
import subprocess
import sys
import threading

import pytest

from waveunet_tf.files import (Locked, atomic_write_text, check_writable, partial_name, process_lock,
                               remove_partials, temporary_dir_beside)


def test_the_write_probe_leaves_a_users_file_of_any_name_alone(tmp_path):
    (tmp_path / "write-test").write_text("mine")
    check_writable(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["write-test"]
    assert (tmp_path / "write-test").read_text() == "mine"


def test_write_probes_of_two_jobs_at_once_do_not_trip_each_other(tmp_path):
    errors = []

    def probe():
        try:
            for _ in range(200):
                check_writable(tmp_path)
        except Exception as e:  # noqa: BLE001  (any failure of either thread fails the test)
            errors.append(e)

    threads = [threading.Thread(target=probe) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_and_folders_get_the_mode_open_and_mkdir_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        with open(tmp_path / "b.json", "w") as f:  # what an ordinary open() gives
            f.write("{}")
        folder = temporary_dir_beside(tmp_path / "version")
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "a.json") == mode(tmp_path / "b.json") == 0o666 & ~umask
    assert mode(folder) == mode(tmp_path / "plain") == 0o777 & ~umask


def test_only_partial_writes_are_removed(tmp_path):
    keep = [tmp_path / "vocals.wav", tmp_path / ".hidden-of-the-user", tmp_path / "sub" / "bass.wav"]
    for p in keep:
        p.parent.mkdir(exist_ok=True)
        p.write_text("x")
    partial_file = tmp_path / "sub" / partial_name(tmp_path / "sub" / "bass.wav", ".wav")
    partial_file.write_text("half")
    partial_dir = temporary_dir_beside(tmp_path / "stems")
    (partial_dir / "vocals.wav").write_text("half")
    assert remove_partials(tmp_path) == 2
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(keep)


def test_a_lock_refuses_a_second_process_naming_the_holder_and_dies_with_it(tmp_path):
    lock = tmp_path / ".x.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom waveunet_tf.files import process_lock\n"
        f"with process_lock({str(lock)!r}, 'the thing'):\n    print('held', flush=True)\n    time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Locked, match=f"the thing is in use by another process \\(pid {holder.pid}\\)"):
            with process_lock(lock, "the thing"):
                pass
    finally:
        holder.kill()  # kill -9: the kernel releases the lock
        holder.wait()
    with process_lock(lock, "the thing"):
        pass
