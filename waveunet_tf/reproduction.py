"""What ``waveunet reproduce`` runs: one call from a MUSDB18 root (or the embedded default data) to a row of the paper's
table: prepare the cache, train with the paper's protocol, evaluate with museval, print the table.

Everything lives in one run directory and every step resumes, so rerunning the same command after an
interruption continues where it stopped:

- ``RUN/data/``: the embedded default dataset, without ``--musdb-root``: a synthetic MUSDB18-HQ dataset
  (``waveunet synth``) plus the real example track that ships with stempeg as an extra test track;
- ``RUN/cache/``: the WAV cache at the model's sample rate (``--cache`` to share one between runs);
- ``RUN/``: the training files (``config.json``, ``best.keras``, ``history.csv``, ``loss.png``, ...) and the
  evaluation (``results.json``, ``results.md``, ``sdr.png``, estimates and per-track scores).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from data_pipeline import make_synthetic_dataset, prepare_cache
from data_pipeline.ingest import check_arguments
from waveunet_tf.audio import write_wav
from waveunet_tf.config import resolve_config
from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.evaluation.evaluate import check_musdb_root, evaluate, gain_line
from waveunet_tf.files import atomic_write_text, check_writable
from waveunet_tf.training import train_on_cache
from waveunet_tf.training.init import init_config, load_start

# The embedded default: `waveunet synth`'s defaults, and the example track of stempeg (6 s of a real song).
SYNTH = {"tracks": 8, "test_tracks": 2, "seconds": 20, "seed": 0}
STEM_ORDER = ("mixture", "drums", "bass", "other", "vocals")  # the stream order of a MUSDB18 .stem.mp4
SYNTHETIC_GROUP = "synthetic test tracks"
EXAMPLE_GROUP = "real example track (stempeg)"


def default_run_dir(variant: str, quick: bool, embedded: bool) -> Path:
    """``runs/<variant>[-quick][-embedded]``."""
    return Path("runs") / (variant + ("-quick" if quick else "") + ("-embedded" if embedded else ""))


def log(msg: str) -> None:
    """A progress line of the reproduction on stderr (stdout ends with the run directory)."""
    print(f"[reproduce] {msg}", file=sys.stderr, flush=True)


def example_track_name() -> str:
    """The name of the example track that ships with stempeg (its file name without ``.stem.mp4``)."""
    import stempeg
    return Path(stempeg.example_stem_path()).name[: -len(".stem.mp4")]


def write_example_track(folder: Path) -> None:
    """stempeg's example ``.stem.mp4`` decoded into the MUSDB18-HQ layout (``<stem>.wav``, 32-bit float: the
    AAC decode peaks slightly above full scale)."""
    import stempeg
    stems, rate = stempeg.read_stems(stempeg.example_stem_path())
    if stems.shape[0] != len(STEM_ORDER):
        raise UserError(f"stempeg's example has {stems.shape[0]} streams, expected {len(STEM_ORDER)}")
    for name, audio in zip(STEM_ORDER, stems):
        write_wav(folder / f"{name}.wav", audio, rate, subtype="FLOAT")


def embedded_dataset(root: Path) -> dict:
    """Make (once) the embedded default dataset under ``root``; returns the evaluation groups
    {title: [test track names]}."""
    done = root / "dataset.json"
    if not done.is_file():
        log(f"writing the embedded dataset to {root}: {SYNTH['tracks']} + {SYNTH['test_tracks']} synthetic "
            f"tracks of {SYNTH['seconds']} s, and stempeg's example track as an extra test track")
        make_synthetic_dataset(root, **SYNTH)
        write_example_track(root / "test" / example_track_name())
        synthetic = sorted(p.name for p in (root / "test").iterdir()
                           if p.is_dir() and p.name != example_track_name())
        atomic_write_text(done, json.dumps({"synthetic": SYNTH, "synthetic_test_tracks": synthetic,
                                            "example_track": example_track_name()}, indent=1) + "\n")
    info = json.loads(done.read_text())
    return {SYNTHETIC_GROUP: info["synthetic_test_tracks"], EXAMPLE_GROUP: [info["example_track"]]}


def is_voice(config) -> bool:
    """A singing-voice model: the sources the paper trained on MUSDB18 plus CCMixter."""
    return set(config.sources) == {"accompaniment", "vocals"}


def check_ccmixter(config, ccmixter_root) -> None:
    """CCMixter trains the singing-voice models only: refused for the others."""
    if ccmixter_root is not None and not is_voice(config):
        raise UsageError(f"--ccmixter-root: the paper trained {config.name} ({', '.join(config.sources)}) on "
                         f"MUSDB18 alone; CCMixter has only accompaniment and vocals")


def reproduce(variant: str, musdb_root=None, wav: bool = False, quick: bool = False, run_dir=None, cache=None,
              config_file=None, sets=(), max_steps: int | None = None, jobs: int = 1, split: str = "paper",
              ccmixter_root=None, init=None, batch_parts: int = 1, notes=(), precision: str = "float32") -> dict:
    """prepare -> train -> evaluate -> table, resumable. Returns evaluate's summary plus ``run_dir``.

    ``split``: the validation tracks (see ``waveunet prepare --help``); ``paper`` draws 25 of the 100 MUSDB18
    train tracks (a quarter of other datasets' train tracks), as the paper's 75/25 split. ``ccmixter_root``:
    CCMixter's songs as extra training tracks (singing-voice variants). ``init``: a model to start from (see
    ``waveunet train --init``). ``batch_parts``: as :func:`waveunet_tf.training.train_on_cache`'s (the command
    passes what :func:`waveunet_tf.training.distribute.training_threads` chose, and its ``notes``, said when the
    training starts). ``precision``: training's (float32, bfloat16 or float16, as ``waveunet train``); the
    evaluation runs in float32."""
    config = resolve_config(variant, config_file, sets, quick)
    check_arguments(config.sample_rate, jobs, split)  # before any work starts
    check_ccmixter(config, ccmixter_root)
    if init is not None:
        init = load_start(init)
        config = init_config(init, variant, config_file, sets, quick)
    embedded = musdb_root is None
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(variant, quick, embedded)
    check_writable(run_dir)
    if embedded:
        if wav:
            raise UserError("--wav describes a --musdb-root; without one the embedded default data is used")
        root, wav = run_dir / "data", True
        groups = embedded_dataset(root)
    else:
        root, groups = check_musdb_root(musdb_root, "test", wav), None
    cache = Path(cache) if cache is not None else run_dir / "cache"

    if ccmixter_root is None and is_voice(config):
        log(f"note: the paper trained {config.name} on MUSDB18 plus CCMixter's 50 songs; add --ccmixter-root DIR "
            f"to train on both")
    log(f"1/3 prepare: {root} -> {cache} at {config.sample_rate} Hz, {split} validation split")
    prepare_cache(root, cache, config.sample_rate, wav=wav, split=split, jobs=jobs, progress=True,
                  ccmixter_root=ccmixter_root)

    log(f"2/3 train {config.name}{' (--quick)' if quick else ''}"
        f"{'' if precision == 'float32' else f' in {precision}'} in {run_dir}")
    train_on_cache(config, cache, run_dir, resume=True, max_steps=max_steps,  # a new run, or the one to resume
                   init=init, batch_parts=batch_parts, notes=notes, precision=precision)

    log(f"3/3 evaluate {run_dir / 'best.keras'} on {root / 'test'}")
    # force: a resumed training may have changed best.keras since an earlier evaluation in this run dir
    summary = evaluate(run_dir, root, out=run_dir, wav=wav, subset="test", force=True, groups=groups)
    summary["run_dir"] = run_dir
    return summary


def gain_lines(summary: dict) -> list[str]:
    """One line per group (or for all tracks): the median SDR gain over the mixture as estimate."""
    lines = []
    if summary.get("gain"):
        lines.append(f"all {summary['results']['tracks']} test tracks: {gain_line(summary['gain'])}")
    for title, g in (summary.get("groups") or {}).items():
        if g.get("gain"):
            lines.append(f"{title}: {gain_line(g['gain'])}")
    return lines
