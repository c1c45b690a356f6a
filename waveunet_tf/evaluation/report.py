"""``report.html``: one page to look at and listen to an evaluation, opened from disk without network.

It holds the paper's table (our row, the mixture-as-estimate baseline, the published row: the numbers of
``results.json`` and ``baseline.json``), the SDR box plots (``sdr.png``), the training curves (``loss.png`` of the
run the model came from), all four metrics aggregated, a sortable table of each track's per-source medians, and per
track the frame-wise SDR over time (1-s frames, an inline SVG) with the listening excerpts of
:mod:`waveunet_tf.evaluation.excerpts` (``report_files/`` beside the page). ``summarize`` rewrites it whenever it
rewrites ``results.json``, so the page always shows the scores on disk.

``waveunet table RUN... --html OUT.html`` writes the paper's table of several runs as such a page
(:func:`write_comparison`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import numpy as np

from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.evaluation import excerpts
from waveunet_tf.evaluation.html import (SOURCE_COLORS, esc, metrics_table, num, paper_tables, png_img, relative,
                                         table, text_cell, write_page)
from waveunet_tf.evaluation.record import read_record
from waveunet_tf.evaluation.scores import METRICS, format_db, ordered_sources
from waveunet_tf.evaluation.table import NOTE, build_rows
from waveunet_tf.files import check_writable
from waveunet_tf.training.run_dir import STATE_FILE

REPORT = "report.html"
SVG_W, SVG_H, PAD_L, PAD_R, PAD_T, PAD_B = 760, 180, 44, 24, 22, 22  # frame plot size and margins (px)


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    raw = max(hi - lo, 1e-9) / count
    step = next(m * 10 ** np.floor(np.log10(raw)) for m in (1, 2, 5, 10) if m * 10 ** np.floor(np.log10(raw)) >= raw)
    return [round(float(t), 9) + 0.0 for t in np.arange(np.ceil(lo / step) * step, hi + step / 2, step)]  # no -0


def frame_plot(track: dict, sources: list[str]) -> str:
    """An inline SVG of the frame-wise SDR over time of one track, {source: {metric: [frames]}}: a line per source,
    broken at undefined (NaN) frames; frame i is drawn at i + 0.5 s."""
    series = {s: np.asarray(track[s]["SDR"], dtype=np.float64) for s in sources if s in track}
    frames = max((len(x) for x in series.values()), default=0)
    finite = np.concatenate([x[np.isfinite(x)] for x in series.values()] + [np.array([])])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    margin = max((hi - lo) * 0.05, 1.0 if hi - lo < 2 else 0.0)  # lines never on the frame's edge
    lo, hi = lo - margin, hi + margin
    width, height = SVG_W - PAD_L - PAD_R, SVG_H - PAD_B - PAD_T

    def x_of(t):
        return PAD_L + width * t / max(frames, 1)

    def y_of(v):
        return PAD_T + height * (hi - v) / (hi - lo)

    parts = [f'<rect x="{PAD_L}" y="{PAD_T}" width="{width}" height="{height}" fill="#fff" stroke="#bbb"/>',
             f'<text x="{PAD_L}" y="13">SDR (dB) per 1-s frame:</text>']
    for v in _ticks(lo, hi, 4):
        if not lo <= v <= hi:
            continue
        y = y_of(v)
        parts.append(f'<line x1="{PAD_L}" x2="{PAD_L + width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
    for t in _ticks(0, frames, 8) if frames else []:
        parts.append(f'<text x="{x_of(t):.1f}" y="{SVG_H - 6}" text-anchor="middle">{t:g} s</text>')
    for i, (source, x) in enumerate(series.items()):
        color = SOURCE_COLORS.get(source, "#555")
        path, pen = [], "M"
        for k, v in enumerate(x):
            if not np.isfinite(v):
                pen = "M"
                continue
            path.append(f"{pen}{x_of(k + 0.5):.1f},{y_of(v):.1f}")
            if pen == "M" and not (k + 1 < len(x) and np.isfinite(x[k + 1])):  # a lone frame: a dot, not a line
                parts.append(f'<circle cx="{x_of(k + 0.5):.1f}" cy="{y_of(v):.1f}" r="2.5" fill="{color}"/>')
            pen = "L"
        if path:
            parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        parts.append(f'<text x="{PAD_L + 140 + 110 * i}" y="13" fill="{color}">{esc(source)}</text>')
    return (f'<svg class="frames" xmlns="http://www.w3.org/2000/svg" width="{SVG_W}" height="{SVG_H}" '
            f'viewBox="0 0 {SVG_W} {SVG_H}" font-size="11" role="img"><title>SDR (dB) per 1-s frame</title>'
            + "".join(parts) + "</svg>")


def _median(frames) -> float | None:
    x = np.asarray(frames, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else None


def track_table(tracks: dict, sources: list[str]) -> str:
    """A sortable row per track and source: the median over its frames of each metric (NaN frames ignored)."""
    rows = [text_cell(name) + text_cell(s) + "".join(num(_median(scores[s][m])) for m in METRICS)
            for name, scores in sorted(tracks.items()) for s in sources if s in scores]
    return table(["track", "source"] + [f"{m} median" for m in METRICS], rows)


def _audio(folder: str, name: str) -> str:
    # preload="none": a MUSDB18 report has up to 1,800 players, and Chromium given that many preloading ones did
    # not finish loading the page in 30 s (measured); each loads when played
    src = quote(f"{excerpts.FILES_DIR}/{folder}/{name}")
    return f'<audio controls preload="none" src="{src}"></audio>'


def excerpt_table(name: str, manifest: dict | None, sources: list[str]) -> str:
    """The listening table of one track: per source the best, typical and worst moment, its frame's SDR and the
    mixture, reference and estimate excerpts."""
    if manifest is None:
        return '<p class="note">No excerpts for this track yet (none written, or its scores changed since): run ' \
               "the same evaluate command again to write them.</p>"
    folder, rows = excerpts.track_folder(name), []
    for s in sources:
        entries = manifest["sources"].get(s, [])
        if not entries:
            rows.append(text_cell(s) + '<td class="text" colspan="6">no frame with a defined SDR '
                        "(a silent reference) or no estimate file</td>")
        for e in entries:
            span = f"{e['start']:g}-{e['start'] + e['seconds']:.3g} s"
            rows.append(text_cell(s) + text_cell(f"{e['label']} (frame at {e['frame']} s)") + text_cell(span)
                        + num(e["sdr"]) + "".join(f"<td>{_audio(folder, e[k])}</td>"
                                                  for k in ("mixture", "reference", "estimate")))
    return table(["source", "moment", "excerpt", "frame SDR", "mixture", "reference", "estimate"], rows,
                 sortable=False)


def track_sections(out: Path, tracks: dict, subset: str | None, sources: list[str]) -> str:
    """Per track: frame-wise SDR over time and the listening excerpts."""
    parts = []
    for i, (name, scores) in enumerate(sorted(tracks.items())):
        folder = out / excerpts.FILES_DIR / excerpts.track_folder(name)
        fresh = subset is not None and excerpts.up_to_date(out, subset, name)
        manifest = excerpts.read_manifest(folder) if fresh else None
        medians = ", ".join(f"{s} {format_db(_median(scores[s]['SDR']))} dB" for s in sources if s in scores)
        parts.append(f'<section id="track-{i}"><h3>{esc(name)}</h3><p class="note">Median SDR: {medians}.</p>'
                     f"{frame_plot(scores, sources)}{excerpt_table(name, manifest, sources)}</section>")
    return "\n".join(parts)


def _training_plot(out: Path, record: dict | None) -> str:
    """``loss.png`` of the run directory the model came from (its folder, else ``out``: a run dir moved with its
    results), or "" when the model is no run's."""
    folders = ([Path(record["model"]).parent] if record and record.get("model") else []) + [out]
    for folder in folders:
        if (folder / STATE_FILE).is_file() and (folder / "loss.png").is_file():
            return "<h2 id=\"training\">Training</h2>" + png_img(folder / "loss.png", "training and validation loss")
    return ""


def write_report(out, tracks: dict, results: dict, baseline: dict | None, groups: dict, label: str,
                 gain_text: str | None = None) -> Path:
    """Write ``out/report.html`` from the evaluation in ``out``: ``tracks`` {track: {source: {metric: frames}}},
    ``results`` / ``baseline`` (the documents of ``results.json`` / ``baseline.json``), ``groups`` ({title: {"tracks",
    "results", "baseline", "gain"}} as ``groups.json``). Returns its path."""
    out = Path(out)
    record = read_record(out)
    subset = record.get("subset") if record else None
    sources = ordered_sources({s for t in tracks.values() for s in t})
    body = [f"<h1>Evaluation of {esc(label)}</h1>",
            f'<p class="note">{results["tracks"]} tracks, museval BSSEval v4 (1-s windows and hops). The numbers '
            "are those of results.json and baseline.json beside this page; click a column to sort.</p>",
            '<nav><a href="#table">table</a><a href="#plots">SDR plots</a><a href="#metrics">all metrics</a>'
            '<a href="#tracks">per track</a><a href="#listen">listen</a></nav>',
            '<h2 id="table">SDR (dB), the paper\'s table</h2>', paper_tables(build_rows([out]), out),
            f'<p class="note">{esc(NOTE)}</p>']
    if gain_text:
        body.append(f"<p>Median SDR gain over the mixture as estimate: {esc(gain_text)}.</p>")
    body += ['<h2 id="plots">SDR per source</h2>', png_img(out / "sdr.png", "SDR box plots per source")]
    body.append(_training_plot(out, record))
    body += ['<h2 id="metrics">All metrics, all tracks</h2>', metrics_table(results, "results.json")]
    if baseline:
        body += ["<h3>The mixture as every source's estimate</h3>", metrics_table(baseline, "baseline.json")]
    for title, g in (groups or {}).items():
        body += [f"<h3>{esc(title)} ({esc(', '.join(g['tracks']))})</h3>", metrics_table(g["results"], None)]
    body += ['<h2 id="tracks">Per track</h2>', '<p class="note">Median over each track\'s 1-s frames.</p>',
             track_table(tracks, sources),
             '<h2 id="listen">Per track: SDR over time and excerpts</h2>',
             f'<p class="note">About {excerpts.SECONDS:g} s around the 1-s frames where the model did best, '
             "typically (nearest the median) and worst, mono MP3 at 32 kbit/s; levels as in the files.</p>",
             track_sections(out, tracks, subset, sources)]
    write_page(out / REPORT, f"Evaluation of {label}", "\n".join(body))
    return out / REPORT


def check_html_target(path, force: bool) -> Path:
    """The ``--html`` file to write: refused with one line if it is a folder, or exists without ``force``, or its
    folder cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--html {path} is a folder: give the page's file name, e.g. {path / 'runs.html'}")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    check_writable(path.parent if str(path.parent) else Path("."), "the --html folder")
    return path


def write_comparison(paths, html_file) -> Path:
    """``waveunet table RUN... --html OUT.html``: the paper's table of several runs (with their baselines and the
    published rows) as a page, with links to each run's own report."""
    html_file = Path(html_file)
    rows = build_rows(paths)
    links = []
    for p in paths:
        folder = Path(p) if Path(p).is_dir() else Path(p).parent
        if (folder / REPORT).is_file():
            href = quote(relative(folder / REPORT, html_file.parent))
            links.append(f'<li><a href="{href}">{esc(folder.name)}</a></li>')
    stale = [f"<li>[stale] {esc(r['path'])}: {esc(r['stale'])}</li>" for r in rows if r["stale"]]
    body = ["<h1>Wave-U-Net runs compared</h1>",
            f'<p class="note">{esc(NOTE)} Click a column to sort.</p>', paper_tables(rows, html_file.parent)]
    if stale:
        body.append(f"<ul>{''.join(stale)}</ul>")
    if links:
        body.append(f"<h2>Each run's report</h2><ul>{''.join(links)}</ul>")
    write_page(html_file, "Wave-U-Net runs compared", "\n".join(body))
    return html_file
