"""The run dir without TensorFlow: --resume of a missing folder, the lock against a second trainer, --force,
and the leftovers of interrupted writes (issue 12, defects 1, 6 and 14)."""

import os

import pytest

from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.files import process_lock
from waveunet_tf.training.checkpoints import Checkpoints
from waveunet_tf.training.run_dir import LOCK, MARKER, RunDir, WorkerRunDir, is_run, open_run_dir
from waveunet_tf.training.protocol import RunState


def test_resume_of_a_run_dir_that_does_not_exist_is_refused_naming_it(tmp_path, capsys):
    from waveunet_tf.cli import main
    typo = tmp_path / "runs" / "m4-typo"
    for argv in (["--variant", "M4"], []):  # with the variant, and taking the config from the run dir
        code = main(["train", *argv, "--cache", str(tmp_path), "--run-dir", str(typo), "--resume"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"run dir {typo} does not exist" in err[0], err
    assert not typo.exists()
    with pytest.raises(UsageError, match="does not exist"):
        with open_run_dir(typo, chief=True, resume=True, force=False):
            pass


def test_a_second_trainer_on_the_same_run_dir_is_refused(tmp_path):
    run = tmp_path / "run"
    with open_run_dir(run, chief=True, resume=False, force=False):
        with pytest.raises(UserError) as e:
            with open_run_dir(run, chief=True, resume=True, force=False):
                pass
        assert str(e.value).startswith(f"run dir {run} is in use by another process (pid {os.getpid()})")
        assert "\n" not in str(e.value)
    with open_run_dir(run, chief=True, resume=True, force=False):  # released at the end of the first
        pass


def test_only_the_chief_locks_and_writes(tmp_path):
    run = tmp_path / "run"
    with process_lock(run / LOCK, "someone"):
        with open_run_dir(run, chief=False, resume=False, force=False) as files:
            assert isinstance(files, WorkerRunDir)
            files.write_state(RunState(epoch=1))
            files.plot(RunState(history=({"epoch": 1, "train_loss": 1.0, "valid_loss": 1.0},)))
    assert sorted(p.name for p in run.iterdir()) == [LOCK]


def test_an_existing_run_is_kept_without_resume_and_force_removes_only_its_files(tmp_path):
    run = tmp_path / "run"
    with open_run_dir(run, chief=True, resume=False, force=False) as files:
        files.write_state(RunState(epoch=2))
    (run / "notes.txt").write_text("mine")
    (run / ".best.keras.0a1b2c3d.partial.keras").write_bytes(b"half a model")  # an interrupted atomic write
    with pytest.raises(UsageError, match="already holds a run \\(state.json, history.csv\\); continue it with"):
        with open_run_dir(run, chief=True, resume=False, force=False):
            pass
    with open_run_dir(run, chief=True, resume=True, force=False) as files:
        assert files.read_state().epoch == 2
    with open_run_dir(run, chief=True, resume=False, force=True) as files:
        assert not files.has_state()
    assert sorted(p.name for p in run.iterdir()) == sorted([LOCK, MARKER, "notes.txt"])


def tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def test_a_folder_of_the_users_is_no_run_and_is_refused_even_with_force(tmp_path):
    """Issue 21, 1: a config.json and a logs/ of the user's made the folder "a run", which --force deleted."""
    (tmp_path / "config.json").write_text('{"my": "settings"}')
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "mynotes.txt").write_text("mine")
    before = tree(tmp_path)
    assert not is_run(tmp_path)
    for resume, force in ((False, False), (False, True), (True, False)):
        with pytest.raises(UsageError) as e:
            with open_run_dir(tmp_path, chief=True, resume=resume, force=force):
                pass
        assert f"{tmp_path} is not a run dir of this package (no {MARKER}) and holds other files (" in str(e.value)
        assert "config.json" in str(e.value) and "\n" not in str(e.value)
    assert {k: v for k, v in tree(tmp_path).items() if k != LOCK} == before
    # a file of another name only: still refused for a new run, but --resume (reproduce's data/) may start there
    other = tmp_path / "other"
    other.mkdir()
    (other / "data").mkdir()
    with pytest.raises(UsageError, match="holds other files \\(data\\); give a new or empty folder"):
        with open_run_dir(other, chief=True, resume=False, force=False):
            pass
    with open_run_dir(other, chief=True, resume=True, force=False) as files:
        assert not files.has_state()
    assert is_run(other) and (other / "data").is_dir()


def test_force_deletes_only_what_the_run_wrote_in_its_folders(tmp_path):
    run = tmp_path / "run"
    with open_run_dir(run, chief=True, resume=False, force=False) as files:
        files.write_state(RunState(epoch=1))
    (run / "logs").mkdir()
    (run / "logs" / "events.out.tfevents.1.host.1.v2").write_bytes(b"events")
    (run / "logs" / "mynotes.txt").write_text("mine")
    with open_run_dir(run, chief=True, resume=False, force=True):
        pass
    assert sorted(p.name for p in run.iterdir()) == sorted([LOCK, MARKER, "logs"])
    assert [p.name for p in (run / "logs").iterdir()] == ["mynotes.txt"]


def test_a_run_written_before_the_marker_is_still_a_run(tmp_path):
    from waveunet_tf.config import variant_config
    variant_config("M4").to_json(tmp_path / "config.json", extra={"package_versions": {"python": "3.11.7"}})
    (tmp_path / "state.json").write_text('{"epoch": 2}')
    assert is_run(tmp_path) and not (tmp_path / MARKER).exists()
    with pytest.raises(UsageError, match="already holds a run \\(config.json, state.json\\); continue it"):
        with open_run_dir(tmp_path, chief=True, resume=False, force=False):
            pass
    with open_run_dir(tmp_path, chief=True, resume=True, force=False) as files:
        assert files.has_state()
    assert (tmp_path / MARKER).is_file()
    (tmp_path / MARKER).unlink()
    (tmp_path / "config.json").write_text('{"my": "settings"}')  # a state.json beside the user's config: no run
    assert not is_run(tmp_path)


def test_a_damaged_state_is_one_line(tmp_path):
    (tmp_path / "state.json").write_text('{"epoch": 1, ')
    with pytest.raises(UserError, match="state.json is damaged .*; start over with --force"):
        RunDir(tmp_path).read_state()


def test_pruning_survives_the_leftovers_of_an_interrupted_checkpoint_write(tmp_path):
    folder = tmp_path / "checkpoints"
    for name in ("ckpt-000000200-00002-0", "ckpt-000000100-00001-0", "best-00002"):
        for ext in ("index", "data-00000-of-00001"):
            (folder / f"{name}.{ext}").parent.mkdir(exist_ok=True)
            (folder / f"{name}.{ext}").write_bytes(b"x")
    # what TensorFlow leaves when killed (or out of disk) while writing a checkpoint
    (folder / "best-00003_temp").mkdir()
    (folder / "best-00003_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    (folder / "ckpt-000000300-00003-0.index").write_bytes(b"")
    Checkpoints(None, folder).prune({"ckpt-000000200-00002-0", "best-00002"})
    assert sorted(p.name for p in folder.iterdir()) == [
        "best-00002.data-00000-of-00001", "best-00002.index",
        "ckpt-000000200-00002-0.data-00000-of-00001", "ckpt-000000200-00002-0.index"]


def test_a_resumed_run_keeps_its_config_except_what_may_change(tmp_path):
    from waveunet_tf.config import variant_config
    first = variant_config("M4", batch_size=8, max_epochs=3)
    first.to_json(tmp_path / "config.json")
    resumed = RunDir(tmp_path).resume_config(variant_config("M4", batch_size=8, max_epochs=5, jit_compile=True))
    assert (resumed.max_epochs, resumed.jit_compile, resumed.batch_size) == (5, True, 8)
    with pytest.raises(UsageError, match="was started with batch_size=8, not 16; resume with the same config"):
        RunDir(tmp_path).resume_config(variant_config("M4", max_epochs=3))


def test_the_end_of_a_run_never_rewrites_the_checkpoint_its_state_names():
    from waveunet_tf.training.checkpoints import latest_name
    last_epoch = RunState(step=300, epoch=3, stage=1)  # what state.json names after the last epoch
    finished = last_epoch.replace(finished=True)  # the best weights, written when the run ends at that step
    assert latest_name(finished) != latest_name(last_epoch)
