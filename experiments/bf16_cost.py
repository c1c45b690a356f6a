"""Issue 17, point 4: what bfloat16 costs in SDR on real audio with a trained model.

    .venv/bin/python experiments/bf16_cost.py MODEL [TRACK.stem.mp4 ...]

For each track (default: the stempeg example and ../shared/fixtures/musdb18_sample's track) the model separates
the mixture in float32 and in bfloat16, and museval (BSSEval v4, 1-s windows) scores, per source, the median over
frames of: the bfloat16 estimate against the float32 one (how close the two precisions are), and each precision's
estimate against the reference stems (what bfloat16 changes in quality). The model's bfloat16 runs wherever
TensorFlow executes bfloat16 kernels (emulated on CPUs without native bfloat16: slow but the same arithmetic).
"""

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def stems_of(path):
    """(mixture [T, 2], {source: reference [T, 2]}, rate) of a MUSDB .stem.mp4 (accompaniment = all but vocals)."""
    import stempeg
    audio, rate = stempeg.read_stems(str(path), dtype=np.float32)
    mixture, drums, bass, other, vocals = audio
    return mixture, {"vocals": vocals, "accompaniment": drums + bass + other}, int(rate)


def median_sdr(reference, estimate):
    import museval
    sdr = museval.evaluate(reference[None], estimate[None], win=44100, hop=44100)[0]
    return float(np.nanmedian(sdr))


def main(model_path, tracks):
    from waveunet_tf.model_io import load_any_model
    from waveunet_tf.separate import separate_array
    models = {p: load_any_model(model_path, p) for p in ("float32", "bfloat16")}
    report = {}
    for track in tracks:
        mixture, references, rate = stems_of(track)
        est = {p: separate_array(m, cfg, mixture, rate) for p, (m, cfg) in models.items()}
        sources = [s for s in models["float32"][1].sources if s in references]
        report[Path(track).name] = {s: {
            "bf16_vs_f32_sdr": round(median_sdr(est["float32"][s], est["bfloat16"][s]), 2),
            "f32_sdr": round(median_sdr(references[s], est["float32"][s]), 3),
            "bf16_sdr": round(median_sdr(references[s], est["bfloat16"][s]), 3),
            "max_abs_diff": float(np.abs(est["float32"][s] - est["bfloat16"][s]).max())} for s in sources}
        print(json.dumps({Path(track).name: report[Path(track).name]}), flush=True)
    return report


if __name__ == "__main__":
    import stempeg
    default = [Path(stempeg.__file__).parent / "data" / "The Easton Ellises - Falcon 69.stem.mp4",
               ROOT.parent / "shared" / "fixtures" / "musdb18_sample" / "train" / "Music Delta - 80s Rock.stem.mp4"]
    main(sys.argv[1], [Path(p) for p in sys.argv[2:]] or default)
