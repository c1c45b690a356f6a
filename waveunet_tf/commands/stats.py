import json

HELP = "the paper's and SiSEC's aggregates (SDR, SIR, SAR, ISR) of a folder of museval JSON score files"
DESCRIPTION = """\
Aggregate a folder of museval BSSEval v4 score files (one JSON per track, as `waveunet evaluate` writes and as
the SiSEC 2018 submissions are published), per source and metric:

  paper  pool the 1-second frames of every track, ignore NaN: median, MAD, mean, SD
         (how the official Wave-U-Net code computed the paper's table)
  sisec  per track the median over frames, then the median over tracks (SiSEC 2018)

The folder is searched recursively; other JSON files (results.json) are ignored."""


def add_arguments(p):
    p.add_argument("json_dir", metavar="JSON_DIR", help="folder of museval JSON files, one per track")
    p.add_argument("--json", action="store_true",
                   help='print one JSON document: {"paper": {source: {metric: {median, mad, mean, sd}}}, '
                        '"sisec": {source: {metric: value}}, "tracks": N}')


def run(args):
    from waveunet_tf.statistics import format_stats, stats_of_folder
    stats = stats_of_folder(args.json_dir)
    print(json.dumps(stats, indent=1) if args.json else format_stats(stats))
    return 0
