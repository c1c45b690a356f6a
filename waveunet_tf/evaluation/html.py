"""HTML pieces of the evaluation report and of ``waveunet table --html``: one self-contained page (inline CSS, a few
lines of inline JS that sort tables, images as data URLs), written atomically.

Every number that comes from ``results.json`` or ``baseline.json`` is shown as the text tables print
(:func:`~waveunet_tf.evaluation.scores.format_db`) and carries its exact value in ``data-v`` and its place in
``data-key`` (``"results.json#paper.vocals.SDR.median"``: the file relative to the page, then the keys), so the
page can be checked against the files.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from string import Template

from waveunet_tf.evaluation.scores import METRICS, format_db
from waveunet_tf.evaluation.table import STATS, grouped
from waveunet_tf.files import atomic_path

TEMPLATE = Path(__file__).with_name("report_template.html")
SOURCE_COLORS = {"vocals": "#1f77b4", "accompaniment": "#ff7f0e", "bass": "#2ca02c", "drums": "#d62728",
                 "other": "#9467bd"}


def esc(text) -> str:
    """``text`` escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def num(value, key: str | None = None) -> str:
    """A ``<td>`` of a score in dB: two decimals (``-`` when undefined), the exact value in ``data-v`` (empty when
    undefined: sorts last) and, for numbers of a results file, its ``data-key``."""
    exact = "" if not isinstance(value, (int, float)) else repr(float(value))
    where = f' data-key="{esc(key)}"' if key else ""
    return f'<td data-v="{exact}"{where}>{format_db(value)}</td>'


def text_cell(text) -> str:
    return f'<td class="text">{esc(text)}</td>'


def table(head: list[str], rows: list[str], sortable: bool = True, row_classes=None) -> str:
    """A table from a header row and rows of ready ``<td>`` cells (one string per row)."""
    classes = row_classes or [""] * len(rows)
    body = "".join(f'<tr class="{c}">{r}</tr>' if c else f"<tr>{r}</tr>" for r, c in zip(rows, classes))
    heads = "".join(f"<th>{esc(h)}</th>" for h in head)
    cls = ' class="sortable"' if sortable else ""
    return f'<div class="scroll"><table{cls}><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table></div>'


def paper_tables(rows: list[dict], page_dir: Path) -> str:
    """``build_rows`` rows as the paper's tables (one per set of sources, as ``results.md``): SDR median / MAD /
    mean / SD per source and SiSEC's median. Cells of our rows and baselines name their file (relative to
    ``page_dir``, the folder of the page) and key."""
    parts = []
    for sources, head, group in grouped(rows):
        lines = []
        for row in group:
            doc = row["path"] and row["kind"] in ("ours", "baseline") and relative(row["path"], page_dir)
            path = f' title="{esc(row["path"])}"' if row["path"] else ""
            tracks = row["tracks"]
            cells = [f'<td class="text"{path}>{esc(row["label"])}</td>',
                     f'<td data-v="{tracks or ""}">{tracks or "-"}</td>']  # sorts as a number
            cells += [num(row["paper"].get(s, {}).get(k), doc and f"{doc}#paper.{s}.SDR.{k}")
                      for s in sources for k in STATS]
            cells += [num(row["sisec"].get(s), doc and f"{doc}#sisec.{s}.SDR") for s in sources]
            lines.append("".join(cells))
        parts.append(table(head, lines, row_classes=[r["kind"] for r in group]))
    return "\n".join(parts)


def metrics_table(stats: dict, doc: str | None) -> str:
    """All four metrics of an aggregate (the shape of ``results.json``): a row per source and metric, the paper's
    median / MAD / mean / SD and SiSEC's median; ``doc`` names the file (relative to the page) for ``data-key``."""
    rows = []
    for source, per_metric in stats["paper"].items():
        for m in METRICS:
            cells = [text_cell(source), text_cell(m)]
            cells += [num(per_metric[m][k], doc and f"{doc}#paper.{source}.{m}.{k}") for k in STATS]
            cells.append(num(stats["sisec"][source][m], doc and f"{doc}#sisec.{source}.{m}"))
            rows.append("".join(cells))
    return table(["source", "metric", "median", "MAD", "mean", "SD", "SiSEC"], rows)


def relative(path, page_dir: Path) -> str:
    """``path`` relative to the folder ``page_dir``, as a URL path."""
    return Path(os.path.relpath(Path(path).resolve(), Path(page_dir).resolve())).as_posix()


def png_img(path: Path, alt: str) -> str:
    """An ``<img>`` holding the PNG at ``path`` as a data URL (the page needs no file beside it for plots)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def write_page(path, title: str, body: str) -> None:
    """The page template filled with ``title`` and ``body`` (HTML), written atomically to ``path``."""
    page = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(title=esc(title), body=body)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")  # unicode track names, whatever the locale
