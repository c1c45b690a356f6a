"""Config: JSON round trip, overrides with type coercion, resolution (variant, --quick, --config, --set), the
--quick preset, and values that make no sense refused once, one line per problem, exit code 2."""

import json

import pytest

from waveunet_tf import variant_config
from waveunet_tf.config import (MAX_INPUT_LENGTH, WaveUNetConfig, parse_overrides, quick_config, resolve_config,
                                variant_names)
from waveunet_tf.errors import UsageError, UserError


def test_json_round_trip(tmp_path):
    cfg = variant_config("M6", batch_size=8)
    cfg.to_json(tmp_path / "c.json")
    d = json.loads((tmp_path / "c.json").read_text())
    assert d["input_length"] == 147443 and d["sources"] == ["bass", "drums", "other", "vocals"]
    assert WaveUNetConfig.from_json(tmp_path / "c.json") == cfg


def test_variant_file_with_overrides(tmp_path):
    (tmp_path / "e.json").write_text(json.dumps({"variant": "M5", "learning_rate": 3e-4}))
    cfg = WaveUNetConfig.from_json(tmp_path / "e.json")
    assert cfg.name == "M5" and cfg.upsampling == "learned" and cfg.learning_rate == 3e-4


def test_set_overrides_are_coerced():
    cfg = variant_config("M4").replace(**parse_overrides(["batch_size=4", "context=false", "sources=a,b,c",
                                                            "learning_rate=1e-3", "requested_output=8192"]))
    assert (cfg.batch_size, cfg.context, cfg.sources, cfg.learning_rate) == (4, False, ("a", "b", "c"), 1e-3)
    assert cfg.input_length == cfg.output_length == 8192


@pytest.mark.parametrize("call, message", [
    (lambda: variant_config("M9"), "unknown variant 'M9'; known variants: M1, M2, M3, M4, M5, M6, M7, M5-HighSR"),
    (lambda: parse_overrides(["nope=1"]), "unknown config key 'nope'; known keys: name,"),
    (lambda: parse_overrides(["batch_size"]), "--set needs KEY=VALUE"),
    (lambda: variant_config("M4", batch_size="many"), "config key 'batch_size' needs a int, not 'many'"),
    (lambda: variant_config("M4", upsampling="cubic"), "upsampling must be one of linear, learned"),
    (lambda: variant_config("M4", channels=3), "channels must be 1 (mono) or 2 (stereo)"),
    (lambda: variant_config("M4", steps_per_epoch=0), "steps_per_epoch must be at least 1, not 0"),
    (lambda: variant_config("M4", learning_rate=-1), "learning_rate must be a number above 0"),
    (lambda: variant_config("M4", fine_tune_learning_rate="nan"), "fine_tune_learning_rate must be a number above 0"),
    (lambda: variant_config("M4", filter_size=0), "filter_size must be at least 1, not 0"),
    (lambda: variant_config("M4", merge_filter_size=0), "merge_filter_size must be at least 1, not 0"),
    (lambda: variant_config("M4", patience=0), "patience must be at least 1, not 0"),
    (lambda: variant_config("M4", beta_2=1), "beta_2 must be at least 0 and below 1"),
    (lambda: variant_config("M4", augment_gain_min=2), "0 < min <= max, not 2.0 and 1.0"),
    (lambda: variant_config("M4", num_layers=40), "num_layers must be at most 22, not 40"),
])
def test_bad_config_fails_with_one_line(call, message):
    with pytest.raises(UsageError) as e:
        call()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_num_layers_is_bounded_by_the_training_window_and_says_which_fits():
    # M4 (filter 15, merge 5) by hand: 16 layers give a 2162675-sample window, 17 layers 4325363 > 2**22
    assert variant_config("M4", num_layers=16).input_length == 2162675 <= MAX_INPUT_LENGTH == 2 ** 22
    with pytest.raises(UsageError) as e:
        variant_config("M4", num_layers=17)
    assert "training window of 4325363 input samples" in str(e.value) and "(num_layers 16 fits)" in str(e.value)


def test_every_problem_gets_its_own_line():
    with pytest.raises(UsageError) as e:
        variant_config("M4", steps_per_epoch=0, learning_rate=-1, filter_size=0)
    lines = str(e.value).splitlines()
    assert len(lines) == 3 and lines[0].startswith("invalid config 'M4': ")
    assert [any(k in line for line in lines) for k in ("steps_per_epoch", "learning_rate", "filter_size")] == [True] * 3


def test_config_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        WaveUNetConfig.from_json(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="is not valid JSON"):
        WaveUNetConfig.from_json(tmp_path / "bad.json")
    (tmp_path / "derived.json").write_text(json.dumps({"variant": "M4", "output_length": 5}))
    with pytest.raises(UserError, match="derived.json says output_length=5 but its settings give 16389"):
        WaveUNetConfig.from_json(tmp_path / "derived.json")


# --- resolving a run's config ---------------------------------------------------------------------------
def test_resolution_order_variant_quick_file_set(tmp_path):
    f = tmp_path / "exp.json"
    f.write_text(json.dumps({"variant": "M4", "num_initial_filters": 10}))
    cfg = resolve_config(None, f, [], quick=True)
    assert (cfg.name, cfg.num_layers, cfg.num_initial_filters) == ("M4", 8, 10)  # quick's 8 layers, the file's 10
    cfg = resolve_config("M4", f, ["num_initial_filters=6", "batch_size=2"], quick=True, jit=True)
    assert (cfg.num_initial_filters, cfg.batch_size, cfg.jit_compile) == (6, 2, True)
    with pytest.raises(UsageError, match="for variant M4, not M6"):
        resolve_config("M6", f, [])


def test_the_file_and_the_sets_are_checked_together(tmp_path):
    # alone, the file's single source is invalid with M4's difference output; the --set makes it valid
    f = tmp_path / "bass.json"
    f.write_text(json.dumps({"sources": ["bass"]}))
    assert resolve_config("M4", f, ["output_type=direct"]).sources == ("bass",)


@pytest.mark.parametrize("content, message", [
    (b"{\"variant\": ", "is not valid JSON"),
    (b"[1, 2]", "must hold a JSON object"),
    ("{\"description\": \"caf\u00e9\"}".encode("latin-1"), "is not UTF-8 text"),
    (b"{\"variant\": \"M4\", \"num_layerz\": 3}", "unknown config key 'num_layerz'"),
])
def test_a_bad_config_file_is_a_bad_argument_naming_the_file(tmp_path, capsys, content, message):
    from waveunet_tf.cli import main
    f = tmp_path / "exp.json"
    f.write_bytes(content)
    code = main(["train", "--config", str(f), "--cache", str(tmp_path), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and str(f) in err[0], err
    assert not (tmp_path / "run").exists()


def test_unknown_set_keys_and_nonsense_values_exit_2(tmp_path, capsys):
    from waveunet_tf.cli import main
    for sets, message in ((["nope=1"], "unknown config key 'nope'"),
                          (["steps_per_epoch=0"], "steps_per_epoch must be at least 1, not 0"),
                          (["num_layers=40"], "num_layers must be at most 22")):
        argv = ["train", "--variant", "M4", "--cache", str(tmp_path), "--run-dir", str(tmp_path / "run")]
        code = main(argv + [x for s in sets for x in ("--set", s)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err


# --- the --quick preset ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", variant_names())
def test_quick_preset_keeps_the_variants_kind_and_shrinks_the_rest(name):
    full, quick = variant_config(name), quick_config(variant_config(name))
    for key in ("context", "channels", "output_type", "output_activation", "upsampling", "sources", "filter_size",
                "merge_filter_size"):
        assert getattr(quick, key) == getattr(full, key), key
    assert quick.num_layers < full.num_layers and quick.num_initial_filters < full.num_initial_filters
    assert quick.input_length <= full.input_length / 4
    assert quick.steps_per_epoch <= 200 and quick.patience <= 3 and 0 < quick.max_epochs <= 20
    assert quick.batch_size <= full.batch_size
