from waveunet_tf import precision
from waveunet_tf.evaluation.evaluate import evaluate
from waveunet_tf.evaluation.table import build_rows, format_markdown

HELP = "separate and score a MUSDB18 subset with museval (BSSEval v4): results.json, results.md, report.html"
DESCRIPTION = """\
Separate every track of a MUSDB18 subset with a trained model, score each with museval (BSSEval v4, 1-second
windows and hops) and aggregate the scores as the paper (pooled frames: median, MAD, mean, SD) and SiSEC 2018
(median over tracks of per-track medians) did. The mixture is scored too, as every source's estimate: the
baseline a separator has to beat.

Writes under OUT (default: the run directory; for x.keras, x-evaluation/ beside it; for official:NAME,
official-NAME-evaluation/ here):
  <subset>/<track>/<source>.wav      the estimates (musdb layout)
  scores/<subset>/<track>.json       museval scores per track (baseline/ likewise for the mixture)
  results.json, baseline.json        both aggregates; results.md: the paper's table; sdr.png: box plots
  report.html, report_files/         one page to open from disk (no network): the table, plots, the SDR of
                                     every 1-s frame per track, ~10-s MP3 excerpts (mixture, reference,
                                     estimate) where the model did best, typically and worst
  evaluation.json                    which model (its weights' fingerprint) and data the scores belong to
Tracks already scored are skipped: rerun the same command to resume. Scores of another model (or a model
trained again since) in OUT are refused unless --force, which starts over."""


def add_arguments(p):
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="a run directory (best.keras), a .keras file, or official:NAME (see `waveunet models`)")
    p.add_argument("--musdb-root", required=True, metavar="ROOT",
                   help="MUSDB18 root (holding test/ and train/); MUSDB18-HQ with --wav")
    p.add_argument("--wav", action="store_true", help="the root is MUSDB18-HQ (folders of WAV files)")
    p.add_argument("--subset", default="test", choices=("test", "train"), help="which subset to score (test)")
    p.add_argument("--out", metavar="DIR", help="where to write estimates and scores (default: see above)")
    p.add_argument("--force", action="store_true",
                   help="discard scores in OUT that belong to another model or dataset")
    p.add_argument("--precision", choices=precision.INFERENCE_CHOICES, default="float32",
                   help="compute precision: float32 (default: the paper's numbers), bfloat16 (only on a CPU with "
                   "native bfloat16: AVX512-BF16 or AMX), auto (bfloat16 where native, else float32)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="do not score the mixture as the estimate")


def run(args):
    summary = evaluate(args.model, args.musdb_root, out=args.out, wav=args.wav, subset=args.subset,
                       force=args.force, baseline=args.baseline, precision=precision.resolve(args.precision),
                       threads_per_window=True)
    print(format_markdown(build_rows([summary["out"]])))
    print(f"\nwrote {summary['out'] / 'results.md'}, results.json, sdr.png, {summary['out'] / 'report.html'} and "
          f"per-track scores in {summary['out'] / 'scores'}")
    return 0
