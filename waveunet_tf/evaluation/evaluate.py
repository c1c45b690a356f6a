"""``waveunet evaluate``: separate every track of a MUSDB18 subset, score it with museval (BSSEval v4, 1-second
windows and hops) and aggregate the scores as the paper and SiSEC 2018 did.

What it writes under ``OUT`` (the run directory by default):

- ``<subset>/<track>/<source>.wav``: the estimates, in the musdb layout (16-bit WAV at the track's rate);
- ``scores/<subset>/<track>.json``: museval's per-track score file (the format of the SiSEC 2018 submissions);
- ``baseline/<subset>/<track>.json``: the same for the mixture scored as every source's estimate, the floor a
  separator has to beat;
- ``results.json`` and ``baseline.json`` (both aggregates, see :mod:`waveunet_tf.evaluation.scores`),
  ``results.md`` (the paper's table with the baseline and published numbers) and ``sdr.png`` (SDR box plots
  per source);
- ``evaluation.json``: which model and data the scores belong to (:mod:`waveunet_tf.evaluation.record`);
- ``report.html`` and ``report_files/``: the page to look at and listen to it all
  (:mod:`waveunet_tf.evaluation.report`, :mod:`waveunet_tf.evaluation.excerpts`).

Every file is written atomically and a track whose score file exists is skipped, so an interrupted evaluation
resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import numpy as np

from waveunet_tf import pretrained
from waveunet_tf.audio import load_audio, match_channels, write_wav
from waveunet_tf.errors import UserError
from waveunet_tf.evaluation import excerpts, record
from waveunet_tf.evaluation.record import BASELINE_DIR, SCORES_DIR
from waveunet_tf.evaluation.report import REPORT, write_report
from waveunet_tf.evaluation.scores import aggregate, format_metrics, load_scores, ordered_sources, pooled_frames
from waveunet_tf.evaluation.table import build_rows, format_markdown
from waveunet_tf.files import atomic_path, atomic_write_text, check_writable, process_lock, remove_partials
from waveunet_tf.fingerprint import model_fingerprint
from waveunet_tf.model_io import LoadedModel, load_model, one_thread_per_window, resolve_keras_path
from waveunet_tf.separate import separate_array


# --- checking what the user gave us --------------------------------------------------------------------------
def check_musdb_root(root, subset: str, wav: bool) -> Path:
    """Fail with one line unless ``root/subset`` holds tracks in the layout ``wav`` says (MUSDB18-HQ folders of
    WAV files, or MUSDB18 ``.stem.mp4`` files)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"MUSDB root {root} is not a folder")
    folder = root / subset
    if not folder.is_dir():
        raise UserError(f"MUSDB root {root} has no {subset!r} subset: expected the folder {folder}")
    hq = [p for p in folder.iterdir() if (p / "mixture.wav").is_file()]
    stems = list(folder.glob("*.stem.mp4"))
    if wav and not hq:
        hint = " (it holds .stem.mp4 files: drop --wav)" if stems else ""
        raise UserError(f"{folder} holds no MUSDB18-HQ tracks (<track>/mixture.wav){hint}")
    if not wav and not stems:
        hint = " (it holds WAV track folders: add --wav)" if hq else ""
        raise UserError(f"{folder} holds no MUSDB18 tracks (<track>.stem.mp4){hint}")
    return root


def default_out(model_path) -> Path:
    """A run directory evaluates into itself; ``x.keras`` into ``x-evaluation/`` beside it; ``official:NAME`` into
    ``official-NAME-evaluation/`` in the current folder (not beside the cached model)."""
    text = str(model_path)
    if text.startswith(pretrained.PREFIX):
        return Path(f"official-{text[len(pretrained.PREFIX):]}-evaluation")
    p = Path(model_path)
    return p if p.is_dir() else p.with_name(p.stem + "-evaluation")


# --- one track --------------------------------------------------------------------------------------------
def _write_scores(store, path: Path) -> None:
    """museval's JSON of one track, validated against its schema, written atomically."""
    store.validate()
    atomic_write_text(path, store.json + "\n")


def _estimates(track, separate, sources, folder: Path) -> dict:
    """The estimates {source: float32 [T, C]} of one track at its rate and length, as the 16-bit WAV files in
    ``folder`` hold them: read back if an earlier run wrote them all, else made by ``separate(mixture [T, C],
    rate) -> {source: [T, c]}`` and written."""
    files = {s: folder / f"{s}.wav" for s in sources}
    mixture = np.asarray(track.audio, dtype=np.float32)
    if all(f.is_file() for f in files.values()):
        est = {s: load_audio(f)[0] for s, f in files.items()}
        if all(e.shape == mixture.shape for e in est.values()):
            return est
    est = separate(mixture, track.rate)
    for s in sources:
        y = np.clip(match_channels(est[s], mixture.shape[1]), -1.0, 1.0)  # 16-bit files: nothing may wrap
        write_wav(files[s], y, track.rate)
    # score what the files hold, so a resumed evaluation scores exactly the same estimates
    return {s: load_audio(f)[0] for s, f in files.items()}


def evaluate_track(track, separate, sources, out: Path, subset: str, baseline: bool = True) -> bool:
    """Separate one musdb ``track`` with ``separate(mixture [T, C], rate) -> {source: [T, C]}``, write the
    estimates of ``sources`` and score them with museval (BSSEval v4, 1-s windows and hops) into
    ``out/scores/<subset>/<track>.json``, and the mixture as every source's estimate into ``out/baseline/``.
    Returns False if both were already done."""
    import museval
    score_path = out / SCORES_DIR / subset / f"{track.name}.json"
    base_path = out / BASELINE_DIR / subset / f"{track.name}.json"
    did = False
    if not score_path.is_file():
        est = _estimates(track, separate, sources, out / subset / track.name)
        _write_scores(museval.eval_mus_track(track, est, win=1.0, hop=1.0), score_path)
        did = True
    if baseline and not base_path.is_file():
        mixture = np.asarray(track.audio, dtype=np.float32)
        _write_scores(museval.eval_mus_track(track, {s: mixture for s in sources}, win=1.0, hop=1.0), base_path)
        did = True
    return did


def _track_done(track, out: Path, subset: str, baseline: bool) -> bool:
    """Whether ``track`` is scored (and its baseline, if asked) and its report excerpts are up to date."""
    scored = (out / SCORES_DIR / subset / f"{track.name}.json").is_file()
    based = not baseline or (out / BASELINE_DIR / subset / f"{track.name}.json").is_file()
    return scored and based and excerpts.up_to_date(out, subset, track.name)


@contextlib.contextmanager
def _decoded_once(track):
    """Hold the musdb ``track``'s mixture and stems in memory for the block, then let them go: musdb decodes a
    file (through ffmpeg, even a WAV) at every ``.audio``, and the separation, museval, the baseline and the
    report's excerpts each read them (half of the excerpts' time on the demo's tracks was that decoding)."""
    stems = [track] + list(track.sources.values())
    try:
        for stem in stems:
            stem.audio = stem.audio
        yield
    finally:
        for stem in stems:
            stem.audio = None


# --- aggregation ------------------------------------------------------------------------------------------
def median_sdr_gain(results: dict, baseline: dict) -> dict:
    """{source: our median SDR minus the mixture baseline's} (paper's pooled aggregate), in dB."""
    gain = {}
    for s, per_metric in results["paper"].items():
        ours = per_metric["SDR"]["median"]
        base = baseline["paper"].get(s, {}).get("SDR", {}).get("median")
        gain[s] = None if ours is None or base is None else ours - base
    return gain


def _plot(out: Path, tracks: dict, base_tracks: dict, label: str) -> None:
    """``sdr.png``: a box per source of the pooled SDR frames (as the paper's figures), the mixture baseline
    beside each."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = ordered_sources({s for t in tracks.values() for s in t})
    data, labels, colors = [], [], []
    for s in sources:
        data.append(pooled_frames(tracks, s))
        labels.append(f"{s}\n{label}")
        colors.append("tab:blue")
        if base_tracks:
            data.append(pooled_frames(base_tracks, s))
            labels.append(f"{s}\nmixture")
            colors.append("lightgray")
    fig, ax = plt.subplots(figsize=(1.6 * len(data) + 1.5, 4.5))
    boxes = ax.boxplot(data, patch_artist=True, showmeans=True, flierprops={"markersize": 2})
    ax.set_xticks(range(1, len(labels) + 1), labels)
    for patch, color in zip(boxes["boxes"], colors):
        patch.set_facecolor(color)
    ax.set_ylabel("SDR (dB), 1-s frames")
    ax.set_title(f"BSSEval v4 SDR per source, {len(tracks)} tracks (triangle: mean)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(out / "sdr.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def gain_line(gain: dict) -> str:
    """``{source: dB}`` -> ``"vocals +10.80 dB, accompaniment +1.60 dB"``."""
    return ", ".join(f"{s} {g:+.2f} dB" if g is not None else f"{s} -" for s, g in gain.items())


def summarize(out, groups: dict | None = None, label: str = "model") -> dict:
    """Aggregate the score files under ``out`` into ``results.json``, ``baseline.json``, ``results.md``,
    ``sdr.png`` and ``report.html``. ``groups`` ({title: [track names]}) adds per-group aggregates (e.g. synthetic
    vs real tracks) to ``results.md``, ``groups.json`` and the report. Returns ``{"results", "baseline", "gain",
    "groups"}``."""
    out = Path(out)
    tracks = load_scores(out / SCORES_DIR)
    base_tracks = load_scores(out / BASELINE_DIR) if (out / BASELINE_DIR).is_dir() else {}
    results = aggregate(tracks)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    baseline = gain = None
    if base_tracks:
        baseline = aggregate(base_tracks)
        atomic_write_text(out / "baseline.json", json.dumps(baseline, indent=1) + "\n")
        gain = median_sdr_gain(results, baseline)
    group_docs = {}
    for title, names in (groups or {}).items():
        r = aggregate(tracks, only=names)
        b = aggregate(base_tracks, only=names) if base_tracks else None
        group_docs[title] = {"tracks": sorted(set(names) & set(tracks)), "results": r, "baseline": b,
                             "gain": median_sdr_gain(r, b) if b else None}
    if group_docs:
        atomic_write_text(out / "groups.json", json.dumps(group_docs, indent=1) + "\n")

    md = [f"# Evaluation of {label}", "",
          f"{results['tracks']} tracks, museval BSSEval v4 (1-s windows and hops). Scores per track: "
          f"`{SCORES_DIR}/`, estimates in the musdb layout beside them. Box plots: `sdr.png`.", "",
          "## SDR (dB), the paper's table", "", format_markdown(build_rows([out]))]
    if gain:
        md += ["", f"Median SDR gain over the mixture as estimate: {gain_line(gain)}."]
    for title, g in group_docs.items():
        n = len(g["tracks"])
        md += ["", f"## {title} ({n} track{'s' if n != 1 else ''}: {', '.join(g['tracks'])})", "",
               format_metrics(g["results"], markdown=True)]
        if g["gain"]:
            md += ["", f"Median SDR gain over the mixture as estimate: {gain_line(g['gain'])}."]
    md += ["", "## All metrics, all tracks", "", format_metrics(results, markdown=True)]
    if baseline:
        md += ["", "## All metrics, the mixture as every source's estimate", "",
               format_metrics(baseline, markdown=True)]
    atomic_write_text(out / "results.md", "\n".join(md) + "\n")
    _plot(out, tracks, base_tracks, label)
    write_report(out, tracks, results, baseline, group_docs, label, gain_line(gain) if gain else None)
    return {"results": results, "baseline": baseline, "gain": gain, "groups": group_docs}


# --- the whole evaluation ---------------------------------------------------------------------------------
def evaluate(model_path, musdb_root, out=None, wav: bool = False, subset: str = "test", force: bool = False,
             baseline: bool = True, groups: dict | None = None, precision: str = "float32",
             threads_per_window: bool = False) -> dict:
    """Separate and score every track of ``musdb_root/subset`` with the model at ``model_path`` (run directory,
    ``.keras`` file or ``official:NAME``) running in ``precision`` (resolved: float32, the paper's numbers, or
    bfloat16), then aggregate; resumable. Returns :func:`summarize`'s dict plus ``"out"``.
    ``threads_per_window``: first set TensorFlow's threads for the whole process to one per op, two windows at
    once (:func:`waveunet_tf.model_io.one_thread_per_window`), as ``waveunet evaluate`` does."""
    import musdb
    from tqdm import tqdm
    root = check_musdb_root(musdb_root, subset, wav)
    keras_file = resolve_keras_path(model_path)
    out = check_writable(out if out is not None else default_out(model_path))
    if threads_per_window:
        one_thread_per_window()
    model, config = load_model(keras_file, precision=precision)
    db = musdb.DB(root=str(root), is_wav=wav, subsets=subset)
    if not db.tracks:
        raise UserError(f"musdb found no tracks in {root / subset}")
    missing = [s for s in config.sources if s not in db.tracks[0].targets]
    if missing:
        raise UserError(f"the model separates {', '.join(config.sources)}, but MUSDB has no target "
                        f"{missing[0]!r} (it has {', '.join(db.tracks[0].targets)})")
    scored = [out / SCORES_DIR, out / BASELINE_DIR, out / subset]
    aggregates = [out / name for name in ("results.json", "baseline.json", "groups.json", "results.md", "sdr.png",
                                          REPORT, excerpts.FILES_DIR)]
    with process_lock(out / ".evaluation.lock", f"the evaluation folder {out}"):
        claim = {"model": str(keras_file.resolve()), "model_fingerprint": model_fingerprint(model, config),
                 "musdb_root": str(root.resolve()), "wav": bool(wav), "subset": subset}
        if precision != "float32":  # scores of another precision are another model's (float32 folders unchanged)
            claim["precision"] = precision
        record.claim(out, claim, scored + aggregates, force)
        # leftovers of an evaluation killed while writing (never the training's files)
        for folder in scored + [out / excerpts.FILES_DIR]:
            remove_partials(folder)
        if keras_file.resolve().parent != out.resolve():  # not the run dir (training's config.json is there):
            config.to_json(out / "config.json")  # so `waveunet table` can name the row after the variant

        loaded = LoadedModel.of_keras(model, config)  # traced once for every track

        def separate(mixture, rate):
            return separate_array(loaded, config, mixture, rate)
        with tqdm(db.tracks, unit="track", desc=f"evaluate {subset}", file=sys.stderr, disable=None) as bar:
            for track in bar:
                bar.set_postfix_str(track.name[:30])
                if _track_done(track, out, subset, baseline):
                    continue
                with _decoded_once(track):
                    evaluate_track(track, separate, config.sources, out, subset, baseline=baseline)
                    excerpts.write_track_excerpts(track, out, subset, config.sources)
        summary = summarize(out, groups=groups, label=config.name)
    summary["out"] = out
    return summary
