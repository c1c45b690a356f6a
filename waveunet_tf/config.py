"""The configuration of one Wave-U-Net: every architectural and training setting, as data.

A config is resolved once (variant defaults, then a JSON file, then ``--set key=value`` overrides) and saved
beside the results, so a run says exactly what it was.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from waveunet_tf.errors import UserError

_VARIANTS_FILE = Path(__file__).with_name("variants.json")

UPSAMPLING = ("linear", "learned")
OUTPUT_TYPES = ("direct", "difference")
OUTPUT_ACTIVATIONS = ("tanh", "linear")


@dataclasses.dataclass(frozen=True)
class WaveUNetConfig:
    """Architecture (the paper's names) and training protocol of one Wave-U-Net.

    ``input_length`` / ``output_length`` are derived from ``requested_output`` by the official rounding
    (see :mod:`waveunet_tf.shapes`).
    """

    name: str = "custom"
    description: str = ""
    # architecture
    num_layers: int = 12
    num_initial_filters: int = 24
    filter_size: int = 15
    merge_filter_size: int = 5
    input_filter_size: int = 15  # the official code uses it only in its length arithmetic
    output_filter_size: int = 1
    upsampling: str = "linear"
    output_type: str = "difference"
    output_activation: str = "tanh"
    context: bool = True
    channels: int = 2
    sources: tuple = ("accompaniment", "vocals")
    sample_rate: int = 22050
    requested_output: int = 16384
    leaky_relu_alpha: float = 0.2
    # training protocol (official defaults)
    batch_size: int = 16
    learning_rate: float = 1e-4
    beta_1: float = 0.9
    beta_2: float = 0.999
    steps_per_epoch: int = 2000
    patience: int = 20
    fine_tune_batch_factor: int = 2
    fine_tune_learning_rate: float = 1e-5
    fine_tune_patience: int = 20
    max_epochs: int = 0  # per stage; 0 = no limit (early stopping decides)
    augment_gain_min: float = 0.7
    augment_gain_max: float = 1.0
    augment_channel_swap: bool = False
    augment_remix: bool = False
    jit_compile: bool = False
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple(self.sources))
        problems = []
        if self.upsampling not in UPSAMPLING:
            problems.append(f"upsampling must be one of {', '.join(UPSAMPLING)}, not {self.upsampling!r}")
        if self.output_type not in OUTPUT_TYPES:
            problems.append(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, not {self.output_type!r}")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            problems.append(
                f"output_activation must be one of {', '.join(OUTPUT_ACTIVATIONS)}, not {self.output_activation!r}")
        if self.channels not in (1, 2):
            problems.append(f"channels must be 1 (mono) or 2 (stereo), not {self.channels!r}")
        if self.num_layers < 1:
            problems.append(f"num_layers must be at least 1, not {self.num_layers}")
        if self.num_initial_filters < 1:
            problems.append(f"num_initial_filters must be at least 1, not {self.num_initial_filters}")
        if len(self.sources) < 1 or len(set(self.sources)) != len(self.sources):
            problems.append(f"sources must be distinct names, not {list(self.sources)}")
        if self.output_type == "difference" and len(self.sources) < 2:
            problems.append("the difference output needs at least two sources")
        if problems:
            raise UserError(f"invalid config {self.name!r}: " + "; ".join(problems))

    # --- derived sizes -------------------------------------------------------------------------------
    @property
    def input_length(self) -> int:
        """Input samples of one training window (official ``get_padding``)."""
        from waveunet_tf import shapes
        return shapes.training_lengths(self)[0]

    @property
    def output_length(self) -> int:
        """Output samples of one training window."""
        from waveunet_tf import shapes
        return shapes.training_lengths(self)[1]

    # --- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["sources"] = list(self.sources)
        return d

    def to_json(self, path=None, extra: dict | None = None) -> str:
        d = self.to_dict()
        d["input_length"], d["output_length"] = self.input_length, self.output_length
        if extra:
            d.update(extra)
        text = json.dumps(d, indent=1)
        if path is not None:
            from waveunet_tf.audio import atomic_write_text
            atomic_write_text(path, text + "\n")
        return text

    def replace(self, **overrides) -> "WaveUNetConfig":
        """A copy with ``overrides`` applied; unknown keys fail naming the known ones."""
        unknown = sorted(set(overrides) - set(field_names()))
        if unknown:
            raise UserError(f"unknown config key {unknown[0]!r}; known keys: {', '.join(field_names())}")
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in overrides.items()})

    @classmethod
    def from_dict(cls, d: dict) -> "WaveUNetConfig":
        """From a dict of config keys; ``variant`` starts from a named variant; derived keys are checked."""
        d = dict(d)
        derived = {k: d.pop(k) for k in ("input_length", "output_length", "params", "package_versions",
                                         "created", "strategy", "replicas") if k in d}
        base = variant_config(d.pop("variant")) if "variant" in d else cls()
        cfg = base.replace(**d)
        for key in ("input_length", "output_length"):
            if key in derived and derived[key] != getattr(cfg, key):
                raise UserError(f"config says {key}={derived[key]} but its settings give {getattr(cfg, key)}")
        return cfg

    @classmethod
    def from_json(cls, path) -> "WaveUNetConfig":
        return cls.from_dict(read_json_object(path, "config file"))


def read_json_object(path, what: str) -> dict:
    """The JSON object in ``path``, or a one-line :class:`UserError` naming ``what`` and the file."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {what} {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {path} is not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise UserError(f"{what} {path} must hold a JSON object of config keys")
    return d


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(WaveUNetConfig)]


def _coerce(key: str, value: Any) -> Any:
    """Coerce a value (possibly a string from ``--set``) to the field's type, or fail with one line."""
    default = {f.name: f.default for f in dataclasses.fields(WaveUNetConfig)}[key]
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(str(v) for v in value)
        return str(value)
    except (TypeError, ValueError):
        kind = type(default).__name__ if not isinstance(default, tuple) else "comma-separated list"
        raise UserError(f"config key {key!r} needs a {kind}, not {value!r}") from None


def parse_overrides(pairs) -> dict:
    """``["key=value", ...]`` from ``--set`` to a dict (values coerced later by :meth:`WaveUNetConfig.replace`)."""
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set needs KEY=VALUE, not {pair!r}")
        key = key.strip()
        if key not in field_names():
            raise UserError(f"unknown config key {key!r}; known keys: {', '.join(field_names())}")
        out[key] = value.strip()
    return out


# --- the paper's variants ----------------------------------------------------------------------------
_ARCH_KEYS = ("num_layers", "num_initial_filters", "filter_size", "merge_filter_size", "output_filter_size",
              "upsampling", "output_type", "output_activation", "context", "channels", "sources",
              "sample_rate", "requested_output", "batch_size", "description")


def reference_facts() -> dict:
    """The measured facts of the official implementation, per variant (and the training protocol)."""
    return json.loads(_VARIANTS_FILE.read_text())


def variant_names() -> list[str]:
    return [k for k in reference_facts() if not k.startswith("_") and k != "training"]


def variant_config(name: str, **overrides) -> WaveUNetConfig:
    """The config of a paper variant (``M1`` .. ``M7``, ``M5-HighSR``), with optional overrides."""
    facts = reference_facts()
    if name not in variant_names():
        raise UserError(f"unknown variant {name!r}; known variants: {', '.join(variant_names())}")
    v, t = facts[name], facts["training"]
    cfg = WaveUNetConfig(
        name=name,
        input_filter_size=v["filter_size"],
        learning_rate=t["learning_rate"], beta_1=t["beta_1"], beta_2=t["beta_2"],
        steps_per_epoch=t["steps_per_epoch"], patience=t["early_stopping_patience_epochs"],
        fine_tune_batch_factor=t["fine_tune"]["batch_size_factor"],
        fine_tune_learning_rate=t["fine_tune"]["learning_rate"],
        fine_tune_patience=t["fine_tune"]["patience_epochs"],
        leaky_relu_alpha=t["leaky_relu_alpha"],
        **{k: v[k] for k in _ARCH_KEYS},
    )
    return cfg.replace(**overrides) if overrides else cfg
