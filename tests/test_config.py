"""Config: JSON round trip, overrides with type coercion, and one-line errors."""

import json

import pytest

from waveunet_tf import variant_config
from waveunet_tf.config import WaveUNetConfig, parse_overrides
from waveunet_tf.errors import UserError


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
])
def test_bad_config_fails_with_one_line(call, message):
    with pytest.raises(UserError) as e:
        call()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        WaveUNetConfig.from_json(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="is not valid JSON"):
        WaveUNetConfig.from_json(tmp_path / "bad.json")
    (tmp_path / "derived.json").write_text(json.dumps({"variant": "M4", "output_length": 5}))
    with pytest.raises(UserError, match="config says output_length=5 but its settings give 16389"):
        WaveUNetConfig.from_json(tmp_path / "derived.json")
