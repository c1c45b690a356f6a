import json
import sys

from waveunet_tf.evaluation.report import check_html_target, write_comparison
from waveunet_tf.evaluation.table import build_rows, format_markdown

HELP = "the paper's table: SDR median/MAD/mean/SD per source for each run, with the published numbers beside"
DESCRIPTION = """\
Print the paper's results table for one or more evaluated runs: a row per run (SDR median, MAD, mean and SD
per source, the paper's pooled-frames aggregate, and SiSEC's median of per-track medians), the mixture-as-
estimate baseline where the run has one, and the published numbers of the official models (M4 = SiSEC 2018
STL1, M6 = STL2, M5-HighSR) beside ours. Runs with the same sources share a table, as in the paper. With --html, the
same comparison is also written as a page (sortable tables, links to each run's report.html).

Results of a run whose model was trained again after they were computed (train --force, or a resumed run that
wrote a new best.keras) are marked [stale] ("stale": the reason, in --json) with a warning on stderr."""


def add_arguments(p):
    p.add_argument("paths", nargs="+", metavar="RUN_OR_RESULTS",
                   help="a run directory (or evaluation folder) holding results.json, or a results JSON file")
    p.add_argument("--json", action="store_true",
                   help='print one JSON document: {"rows": [{"label", "variant", "kind", "path", "tracks", '
                        '"paper": {source: {median, mad, mean, sd}}, "sisec": {source: value}, "stale"}]} (SDR, dB)')


    p.add_argument("--html", metavar="OUT.html",
                   help="also write the comparison as a self-contained HTML page (refuses to overwrite an existing "
                        "file unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite the --html file if it exists")


def run(args):
    rows = build_rows(args.paths)
    for row in rows:
        if row["stale"]:
            print(f"waveunet table: warning: {row['path']} is stale ({row['stale']}); run `waveunet evaluate` "
                  "again with --force", file=sys.stderr)
    if args.html:
        write_comparison(args.paths, check_html_target(args.html, args.force))
        print(f"waveunet table: wrote {args.html}", file=sys.stderr)
    print(json.dumps({"rows": rows}, indent=1) if args.json else format_markdown(rows))
    return 0
