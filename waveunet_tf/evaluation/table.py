"""The paper's results table: a row per model, SDR median / MAD / mean / SD per source (the paper's pooled-frames
aggregate), with the published numbers of the official models beside ours.

Rows with the same sources form one table, as in the paper (the voice task: vocals and accompaniment; the
multi-instrument task: vocals, bass, drums, other). A row whose scores belong to an earlier model of its run
(see :mod:`waveunet_tf.evaluation.record`) is marked stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from waveunet_tf.errors import UserError
from waveunet_tf.evaluation.record import stale_reason
from waveunet_tf.evaluation.scores import format_db, ordered_sources

PUBLISHED_FILE = Path(__file__).parents[1] / "published.json"
STATS = ("median", "mad", "mean", "sd")
BASELINE_FILE = "baseline.json"  # beside results.json: the mixture scored as every source's estimate


def published() -> dict:
    """{variant: {"label", "trained_on", "SDR": {source: {median, mad, mean, sd}}}} of the official models."""
    return {k: v for k, v in json.loads(PUBLISHED_FILE.read_text()).items() if not k.startswith("_")}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from e
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON: {e}") from e


def _is_score(x) -> bool:
    return x is None or isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_results(doc, path: Path) -> dict:
    """``doc`` if it has the shape of ``results.json`` (SDR of every source); else one line naming ``path``."""
    def fail(what):
        raise UserError(f"{path} is not a results file ({what}): expected the JSON of `waveunet evaluate` "
                        '(results.json) or `waveunet stats --json`, {"paper": {source: {metric: {"median", '
                        '"mad", "mean", "sd"}}}, "sisec": {source: {metric: value}}, "tracks": N}')
    if not (isinstance(doc, dict) and isinstance(doc.get("paper"), dict) and "tracks" in doc):
        fail('no "paper" object or no "tracks"')
    if not (doc["tracks"] is None or isinstance(doc["tracks"], int)):
        fail(f'"tracks" is {doc["tracks"]!r}, not a number')
    sisec = doc.get("sisec", {})
    if not isinstance(sisec, dict):
        fail('"sisec" is not an object')
    for source, per_metric in doc["paper"].items():
        sdr = per_metric.get("SDR") if isinstance(per_metric, dict) else None
        if not (isinstance(sdr, dict) and all(_is_score(sdr.get(k)) for k in STATS)):
            fail(f"paper.{source}.SDR is not an object of numbers {', '.join(STATS)}")
        value = sisec.get(source, {})
        if not (isinstance(value, dict) and _is_score(value.get("SDR"))):
            fail(f"sisec.{source}.SDR is not a number")
    return doc


def _row(label: str, variant: str | None, kind: str, path, results: dict, stale: str | None = None) -> dict:
    paper = {s: {k: results["paper"][s]["SDR"].get(k) for k in STATS} for s in results["paper"]}
    sisec = {s: (results.get("sisec") or {}).get(s, {}).get("SDR") for s in results["paper"]}
    return {"label": label + (" [stale]" if stale else ""), "variant": variant, "kind": kind,
            "path": str(path) if path else None, "tracks": results.get("tracks"), "paper": paper, "sisec": sisec,
            "stale": stale}


def rows_for(path) -> list[dict]:
    """The rows one argument contributes: a run directory (or evaluation folder) with ``results.json``, or a
    results JSON file. The variant name comes from ``config.json`` beside it, else the folder's name; the
    mixture baseline (``baseline.json``) is added when present. ``row["stale"]`` says why the scores no longer
    describe the run's model (None when they do)."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        if path.is_dir():
            raise UserError(f"{path} has no results.json: evaluate the model first "
                            f"(waveunet evaluate --model {path} --musdb-root ROOT)")
        raise UserError(f"{path} does not exist")
    results = _check_results(_read_json(file), file)
    folder = file.parent
    variant = None
    if (folder / "config.json").is_file():
        config = _read_json(folder / "config.json")
        variant = config.get("name") if isinstance(config, dict) else None
    label = f"{variant or folder.name} ({folder.name})" if variant and variant != folder.name else (
        variant or folder.name)
    stale = stale_reason(folder) if file.name == "results.json" else None
    rows = [_row(label, variant, "ours", file, results, stale)]
    if file.name == "results.json" and (folder / BASELINE_FILE).is_file():
        base = _check_results(_read_json(folder / BASELINE_FILE), folder / BASELINE_FILE)
        rows.append(_row(f"mixture as estimate ({folder.name})", None, "baseline", folder / BASELINE_FILE, base))
    return rows


def base_variant(name: str | None) -> str | None:
    """The paper variant a (possibly quick or renamed) run belongs to: ``M4-quick`` -> ``M4``."""
    if not name:
        return None
    pub = published()
    for v in sorted(pub, key=len, reverse=True):
        if name == v or name.startswith(v + "-") and not name[len(v):].startswith("-HighSR"):
            return v
    return None


def build_rows(paths) -> list[dict]:
    """Our rows, each followed by the published row of its variant (once per variant)."""
    pub, rows, shown = published(), [], set()
    for p in paths:
        ours = rows_for(p)
        rows += ours
        for v in {base_variant(row["variant"]) for row in ours if row["kind"] == "ours"}:
            if v and v not in shown:
                shown.add(v)
                rows.append({"label": pub[v]["label"], "variant": v, "kind": "published", "path": None,
                             "tracks": 50, "paper": pub[v]["SDR"], "sisec": {s: None for s in pub[v]["SDR"]},
                             "stale": None})
    return rows


NOTE = ("SDR in dB, BSSEval v4, 1-s frames. med/MAD/mean/SD: the paper's aggregate (frames of all tracks pooled, "
        "NaN ignored); SiSEC: median over tracks of per-track medians. Published rows: 50 MUSDB18 test tracks.")


def grouped(rows: list[dict]) -> list[tuple[list[str], list[str], list[dict]]]:
    """The rows split into the paper's tables, one per set of sources: ``[(sources, column heads, rows)]``; the
    columns are model, tracks, SDR median / MAD / mean / SD per source, then SiSEC's median per source."""
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault(tuple(ordered_sources(row["paper"])), []).append(row)
    return [(list(sources), ["model", "tracks"] + [f"{s} {k}" for s in sources for k in ("med", "MAD", "mean", "SD")]
             + [f"{s} SiSEC" for s in sources], group) for sources, group in groups.items()]


def format_markdown(rows: list[dict]) -> str:
    """The rows as markdown tables (one per set of sources): SDR median / MAD / mean / SD per source, in dB,
    and SiSEC's median of per-track medians."""
    parts = []
    for sources, head, group in grouped(rows):
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        for row in group:
            cells = [row["label"], str(row["tracks"] or "-")]
            cells += [format_db(row["paper"].get(s, {}).get(k)) for s in sources for k in STATS]
            cells += [format_db(row["sisec"].get(s)) for s in sources]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    stale = [f"[stale] {row['path']}: {row['stale']}; evaluate again with --force" for row in rows if row["stale"]]
    return "\n\n".join(parts + [NOTE] + (["\n".join(stale)] if stale else []))
