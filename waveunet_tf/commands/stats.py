import json
from pathlib import Path

from waveunet_tf.evaluation.record import RECORD_FILE, SCORES_DIR
from waveunet_tf.evaluation.scores import format_metrics, stats_of_folder

HELP = "the paper's and SiSEC's aggregates (SDR, SIR, SAR, ISR) of a folder of museval JSON score files"
DESCRIPTION = """\
Aggregate a folder of museval BSSEval v4 score files (one JSON per track, as `waveunet evaluate` writes and as
the SiSEC 2018 submissions are published), per source and metric:

  paper  pool the 1-second frames of every track, ignore NaN: median, MAD, mean, SD
         (how the official Wave-U-Net code computed the paper's table)
  sisec  per track the median over frames, then the median over tracks (SiSEC 2018)

The folder is searched recursively; other JSON files (results.json) are ignored. Given the output folder of
`waveunet evaluate` (a run directory), it reads the model's scores (OUT/scores), not the baseline's."""


def add_arguments(p):
    p.add_argument("json_dir", metavar="JSON_DIR", help="folder of museval JSON files, one per track")
    p.add_argument("--json", action="store_true",
                   help='print one JSON document: {"paper": {source: {metric: {median, mad, mean, sd}}}, '
                        '"sisec": {source: {metric: value}}, "tracks": N}')


def run(args):
    folder = Path(args.json_dir)
    if (folder / RECORD_FILE).is_file() and (folder / SCORES_DIR).is_dir():
        folder = folder / SCORES_DIR  # an evaluation folder: the model's scores, not the mixture baseline's
    stats = stats_of_folder(folder)
    print(json.dumps(stats, indent=1) if args.json else format_metrics(stats))
    return 0
