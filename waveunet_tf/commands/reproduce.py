from waveunet_tf import precision
from waveunet_tf.errors import UsageError
from waveunet_tf.evaluation.table import build_rows, format_markdown
from waveunet_tf.reproduction import gain_lines, reproduce
from waveunet_tf.training.distribute import training_threads

HELP = "reproduce a row of the paper's table: prepare -> train -> evaluate -> table, in one resumable run dir"
DESCRIPTION = """\
Reproduce a variant of the paper on MUSDB18 in one command: prepare the WAV cache at the variant's sample
rate, train with the paper's protocol (early stopping, then fine-tuning), separate and score the test tracks
with museval (BSSEval v4), and print the paper's table with the mixture-as-estimate baseline and the
published numbers.

Without --musdb-root it runs on the embedded default data: a synthetic MUSDB18-HQ dataset (8 train and 2 test
tracks of 20 s, as `waveunet synth`) plus the real example track that ships with stempeg as an extra test
track; results.md then also reports the synthetic and real test tracks separately.

Everything goes into the run dir (default runs/<variant>[-quick][-embedded]): data/ (embedded default),
cache/, the training files, and the evaluation (results.json, results.md, sdr.png, estimates, scores).
Rerun the same command to resume after an interruption. The last line on stdout is the run dir."""


def add_arguments(p):
    p.add_argument("--variant", required=True, help="the paper's variant: M1 .. M7, M5-HighSR")
    p.add_argument("--musdb-root", metavar="ROOT",
                   help="MUSDB18 root (ROOT/{train,test}/<track>.stem.mp4), or MUSDB18-HQ with --wav; "
                        "default: the embedded synthetic + example data")
    p.add_argument("--wav", action="store_true", help="ROOT is MUSDB18-HQ (folders of WAV files)")
    p.add_argument("--quick", action="store_true",
                   help="the small --quick preset of `waveunet train` (same kind of model, minutes on 2 cores)")
    p.add_argument("--run-dir", metavar="RUN", help="the run directory (default runs/<variant>[-quick][-embedded])")
    p.add_argument("--cache", metavar="CACHE", help="WAV cache to create or reuse (default RUN/cache); share one "
                                                    "between variants of the same sample rate")
    p.add_argument("--config", metavar="FILE", help="JSON config file for train (e.g. experiments/M4.json)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                   help="override one config key for train (repeatable)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop training after N steps (smoke tests)")
    p.add_argument("--split", choices=("paper", "musdb", "official"), default="paper",
                   help="validation tracks: paper = 25 of the 100 train tracks, as the paper (default); musdb = "
                        "the musdb package's 14; official = the 25 the official code drew (see `waveunet prepare "
                        "--help`)")
    p.add_argument("--ccmixter-root", metavar="DIR",
                   help="CCMixter (DIR/<song>/{mix,source-01,source-02}.wav) as extra training tracks, as the paper "
                        "trained its singing-voice variants (refused for M6)")
    p.add_argument("--init", metavar="MODEL",
                   help="start training from MODEL's weights (a run dir, a .keras file or official:NAME), as "
                        "`waveunet train --init`")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="tracks prepared in parallel (default 1)")
    p.add_argument("--precision", choices=precision.TRAINING_CHOICES, default="float32",
                   help="training's compute precision, as `waveunet train --precision` (default float32; bfloat16 "
                        "only on a CPU with native bfloat16); the evaluation runs in float32, the paper's numbers")


def run(args):
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, not {args.max_steps}")
    if args.wav and not args.musdb_root:
        raise UsageError("--wav describes a --musdb-root; give one, or leave both out for the embedded default")
    train_precision = precision.resolve_training(args.precision)
    notes = []  # said when the training starts, not before a refusal
    parts = training_threads(notes.append)  # before TensorFlow starts, as `train`
    if train_precision == "float16":
        precision.require_gpu_for_float16()  # before the data is prepared
    summary = reproduce(args.variant, musdb_root=args.musdb_root, wav=args.wav, quick=args.quick,
                        run_dir=args.run_dir, cache=args.cache, config_file=args.config, sets=args.sets,
                        max_steps=args.max_steps, jobs=args.jobs, split=args.split,
                        ccmixter_root=args.ccmixter_root, init=args.init, batch_parts=parts, notes=notes,
                        precision=train_precision)
    run_dir = summary["run_dir"]
    print(format_markdown(build_rows([run_dir])))
    print("\nMedian SDR gain over the mixture as estimate (the paper's pooled-frames median):")
    for line in gain_lines(summary):
        print(f"  {line}")
    print(f"\nresults: {run_dir / 'results.md'}, {run_dir / 'results.json'}, {run_dir / 'sdr.png'}")
    print(run_dir)
    return 0
