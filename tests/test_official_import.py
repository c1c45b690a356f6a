"""Import of official TF1 checkpoints: every weight lands where it belongs (checked by an independent numpy
forward pass), and checkpoints that do not fit fail with one line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from numpy_reference import forward
from official_checkpoint import official_variables, write_official_checkpoint
from waveunet_tf import shapes, variant_config
from waveunet_tf.errors import UserError
from waveunet_tf.official_import import config_from_official, import_checkpoint

SMALL = dict(num_layers=3, num_initial_filters=3, filter_size=5, merge_filter_size=3, input_filter_size=5)

# one per variant family: direct/difference, same/valid, linear/learned, mono/stereo, 2 and 4 sources
FAMILIES = {
    "M1-direct-same-linear-mono": dict(base="M1", requested_output=32),
    "M2-difference-same-learned-stereo-4src": dict(base="M2", upsampling="learned", channels=2,
                                                  sources="bass,drums,other,vocals", output_activation="linear",
                                                  requested_output=24),
    "M4-difference-valid-linear-stereo": dict(base="M4", requested_output=40),
    "M5-difference-valid-learned-stereo": dict(base="M5", requested_output=40),
    "M6-direct-valid-linear-activation-4src": dict(base="M6", output_type="direct", output_activation="linear",
                                                   output_filter_size=3, requested_output=40),
    "M3-valid-mono-linear-activation": dict(base="M3", output_activation="linear", requested_output=40),
}


def family_config(key):
    kw = dict(FAMILIES[key])
    return variant_config(kw.pop("base"), **SMALL, **kw)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_imported_weights_match_numpy_reference(tmp_path, family):
    cfg = family_config(family)
    weights = official_variables(cfg, seed=hash(family) % 1000)
    prefix = write_official_checkpoint(weights, tmp_path / "model")
    model = import_checkpoint(prefix, cfg)

    rng = np.random.default_rng(1)
    for n_in in (cfg.input_length, cfg.input_length + shapes.step(cfg)):
        mixture = rng.uniform(-0.6, 0.6, (n_in, cfg.channels)).astype(np.float32)
        ours = model(mixture[None], training=False)
        ref = forward(weights, cfg, mixture)
        assert list(ours) == list(cfg.sources)
        for s in cfg.sources:
            assert ours[s].shape[1] == ref[s].shape[0] == n_in - sum(shapes.context(cfg))
            np.testing.assert_allclose(ours[s][0].numpy(), ref[s], atol=1e-5, err_msg=s)


def test_training_mode_does_not_clip(tmp_path):
    cfg = family_config("M3-valid-mono-linear-activation")
    weights = official_variables(cfg, seed=3)
    weights = {k: v * (4.0 if k.endswith("kernel") else 1.0) for k, v in weights.items()}  # drive past [-1, 1]
    model = import_checkpoint(write_official_checkpoint(weights, tmp_path / "m"), cfg)
    mixture = np.random.default_rng(0).uniform(-1, 1, (cfg.input_length, 1)).astype(np.float32)
    train = model(mixture[None], training=True)
    ref = forward(weights, cfg, mixture, training=True)
    assert max(np.abs(train[s]).max() for s in cfg.sources) > 1.0
    for s in cfg.sources:
        np.testing.assert_allclose(train[s][0].numpy(), ref[s], atol=1e-4, rtol=1e-5)
        assert np.abs(model(mixture[None], training=False)[s]).max() <= 1.0


def test_checkpoint_that_does_not_fit_names_first_differing_variable(tmp_path):
    cfg = family_config("M4-difference-valid-linear-stereo")
    prefix = write_official_checkpoint(official_variables(cfg), tmp_path / "m")
    wider = cfg.replace(num_initial_filters=4)
    with pytest.raises(UserError, match=r"separator/conv1d/kernel has shape \[5, 2, 3\] in the checkpoint "
                                        r"but \[5, 2, 4\] in the model"):
        import_checkpoint(prefix, wider)
    with pytest.raises(UserError, match=r"separator/interp_0 .* is missing"):
        import_checkpoint(prefix, cfg.replace(upsampling="learned"))
    with pytest.raises(UserError, match=r"it has separator/conv1d_8/kernel"):  # a 3rd-source conv the model lacks
        import_checkpoint(write_official_checkpoint(official_variables(cfg.replace(
            sources=("bass", "drums", "vocals"))), tmp_path / "three"), cfg)


def test_official_config_json_and_cli(tmp_path):
    cfg = family_config("M5-difference-valid-learned-stereo")
    weights = official_variables(cfg, seed=5)
    prefix = write_official_checkpoint(weights, tmp_path / "ckpt")  # .../ckpt-1234
    official = {"num_layers": 3, "num_initial_filters": 3, "filter_size": 5, "merge_filter_size": 3,
                "input_filter_size": 5, "output_filter_size": 1, "upsampling": "learned",
                "output_type": "difference", "context": True, "source_names": ["accompaniment", "vocals"],
                "mono_downmix": False, "output_activation": "tanh", "num_frames": 40, "expected_sr": 22050,
                "batch_size": 16, "model_base_dir": "checkpoints", "init_sup_sep_lr": 1e-4}
    assert config_from_official(official).input_length == cfg.input_length
    (tmp_path / "cfg.json").write_text(json.dumps(official))
    out = tmp_path / "imported.keras"
    cmd = [sys.executable, "-m", "waveunet_tf.cli", "import-official", prefix,
           "--official-config", str(tmp_path / "cfg.json"), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    from waveunet_tf.model_io import load_model
    model, loaded_cfg = load_model(out)
    assert loaded_cfg.upsampling == "learned" and loaded_cfg.sources == cfg.sources
    mixture = np.random.default_rng(2).uniform(-0.5, 0.5, (cfg.input_length, 2)).astype(np.float32)
    ref = forward(weights, cfg, mixture)
    for s in cfg.sources:
        np.testing.assert_allclose(model(mixture[None])[s][0].numpy(), ref[s], atol=1e-5)

    again = subprocess.run(cmd, capture_output=True, text=True)  # never overwrite without --force
    assert again.returncode == 1 and again.stderr.strip().endswith("exists; pass --force to overwrite it")
    bad = subprocess.run(cmd[:5] + ["--variant", "M4", "--out", str(tmp_path / "m4.keras")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "does not fit M4" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = subprocess.run(cmd[:4] + [str(tmp_path / "nothing"), "--variant", "M4", "--out",
                                        str(tmp_path / "x.keras")], capture_output=True, text=True)
    assert missing.returncode == 1 and "is not a TensorFlow checkpoint" in missing.stderr
