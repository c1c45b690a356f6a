"""``make demo``: the whole package in one go, on a laptop, in minutes.

1. ``waveunet reproduce --variant M4 --quick`` on the embedded default data (a synthetic MUSDB18-HQ dataset plus
   the real example track that ships with stempeg): prepare -> train -> evaluate -> table, in ``runs/demo``;
2. ``waveunet separate`` of the real example track with the trained model;
3. a summary of where everything went, the measured SDR gains over the mixture, and the elapsed time.

Rerunning resumes (finished steps are skipped). ``DEMO_RUN_DIR`` chooses another run directory.
"""

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's packages, even before `pip install -e .`
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    import stempeg

    from waveunet_tf import cli
    from waveunet_tf.reproduction import EXAMPLE_GROUP, SYNTHETIC_GROUP
    from waveunet_tf.separate import song_name

    start = time.monotonic()
    run_dir = Path(os.environ.get("DEMO_RUN_DIR", ROOT / "runs" / "demo"))
    code = cli.main(["reproduce", "--variant", "M4", "--quick", "--run-dir", str(run_dir)])
    if code:
        return code
    example = stempeg.example_stem_path()
    separated = run_dir / "separated"
    # the demo owns this folder: a retrained model's stems replace the old ones
    code = cli.main(["separate", example, "--model", str(run_dir), "-o", str(separated), "--force"])
    if code:
        return code

    groups = json.loads((run_dir / "groups.json").read_text())
    minutes = (time.monotonic() - start) / 60
    print(f"\n=== waveunet demo: done in {minutes:.1f} min ===", file=sys.stderr)
    print(f"run directory        {run_dir}", file=sys.stderr)
    print(f"  data               {run_dir / 'data'} (synthetic tracks + the stempeg example, MUSDB18-HQ layout)",
          file=sys.stderr)
    print(f"  cache              {run_dir / 'cache'}", file=sys.stderr)
    print(f"  model              {run_dir / 'best.keras'} (config.json, history.csv, loss.png, logs/)",
          file=sys.stderr)
    print(f"  evaluation         {run_dir / 'results.md'}, results.json, sdr.png, scores/, test/ (estimates)",
          file=sys.stderr)
    print(f"  look and listen    {run_dir / 'report.html'} (open it in a browser)", file=sys.stderr)
    print(f"  separated example  {separated / song_name(example)}/{{accompaniment,vocals}}.wav", file=sys.stderr)
    for title in (SYNTHETIC_GROUP, EXAMPLE_GROUP):
        g = groups[title]
        parts = []
        for source in ("vocals", "accompaniment"):
            ours = g["results"]["paper"][source]["SDR"]["median"]
            base = g["baseline"]["paper"][source]["SDR"]["median"]
            parts.append(f"{source} {ours:.2f} dB (mixture {base:.2f}, {ours - base:+.2f})")
        print(f"median SDR, {title}: " + "; ".join(parts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
