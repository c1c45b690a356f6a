"""The configuration of one Wave-U-Net: every architectural and training setting, as data.

A config is resolved once (:func:`resolve_config`: the variant's defaults, then the ``--quick`` preset, then a
JSON file, then ``--set key=value`` overrides), checked once with one line per problem, and saved beside the
results, so a run says exactly what it was.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from pathlib import Path
from typing import Any

from waveunet_tf import shapes
from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.files import atomic_write_text

_VARIANTS_FILE = Path(__file__).with_name("variants.json")

UPSAMPLING = ("linear", "learned")
OUTPUT_TYPES = ("direct", "difference")
OUTPUT_ACTIVATIONS = ("tanh", "linear")
# Keys a saved config.json holds besides the config keys: computed from them (checked) or about the run.
DERIVED_KEYS = ("input_length", "output_length", "params", "package_versions", "created", "strategy", "replicas",
                "precision")
# One training window's activations grow with its input length. M4's window (147443 samples) at batch 16 peaks at
# 3.7 GB on a CPU; 2**22 samples (95 s at 44.1 kHz, 28 times that window) is beyond what one batch fits in.
MAX_INPUT_LENGTH = 2 ** 22
# Each layer halves the time resolution, so a window spans at least 2**num_layers samples.
MAX_LAYERS = int(math.log2(MAX_INPUT_LENGTH))
_AT_LEAST_ONE = ("num_layers", "num_initial_filters", "filter_size", "merge_filter_size", "input_filter_size",
                 "output_filter_size", "sample_rate", "requested_output", "batch_size", "steps_per_epoch",
                 "patience", "fine_tune_batch_factor", "fine_tune_patience")


@dataclasses.dataclass(frozen=True)
class WaveUNetConfig:
    """Architecture (the paper's names) and training protocol of one Wave-U-Net. Every instance is valid: the
    constructor (and :meth:`replace`) refuses values that make no sense, one line per problem.

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
        found = problems(self)
        if found:
            raise UsageError(f"invalid config {self.name!r}: " + "\n".join(found))

    # --- derived sizes -------------------------------------------------------------------------------
    @property
    def input_length(self) -> int:
        """Input samples of one training window (official ``get_padding``)."""
        return shapes.training_lengths(self)[0]

    @property
    def output_length(self) -> int:
        """Output samples of one training window."""
        return shapes.training_lengths(self)[1]

    # --- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The config keys and values (``sources`` as a list), ready for JSON."""
        d = dataclasses.asdict(self)
        d["sources"] = list(self.sources)
        return d

    def to_json(self, path=None, extra: dict | None = None) -> str:
        """The config as JSON with its derived lengths and ``extra`` keys; written atomically to ``path`` if given."""
        d = self.to_dict()
        d["input_length"], d["output_length"] = self.input_length, self.output_length
        if extra:
            d.update(extra)
        text = json.dumps(d, indent=1)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    def replace(self, **overrides) -> "WaveUNetConfig":
        """A copy with ``overrides`` applied (checked together); unknown keys fail naming the known ones."""
        unknown = sorted(set(overrides) - set(field_names()))
        if unknown:
            raise UsageError(f"unknown config key {unknown[0]!r}; known keys: {', '.join(field_names())}")
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in overrides.items()})

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "WaveUNetConfig":
        """From a dict of config keys; ``variant`` starts from a named variant; derived keys are checked."""
        d = dict(d)
        derived = split_derived(d)
        base = variant_config(d.pop("variant")) if "variant" in d else cls()
        return check_derived(base.replace(**d), derived, source)

    @classmethod
    def from_json(cls, path) -> "WaveUNetConfig":
        """From a JSON file of config keys (see :meth:`from_dict`); one line naming the file when it is unusable."""
        return cls.from_dict(read_json_object(path, "config file"), source=f"config file {path}")


def problems(cfg: WaveUNetConfig) -> list[str]:
    """One line per value of ``cfg`` that makes no sense (empty when the config is usable)."""
    out = []
    for key, allowed in (("upsampling", UPSAMPLING), ("output_type", OUTPUT_TYPES),
                         ("output_activation", OUTPUT_ACTIVATIONS)):
        if getattr(cfg, key) not in allowed:
            out.append(f"{key} must be one of {', '.join(allowed)}, not {getattr(cfg, key)!r}")
    if cfg.channels not in (1, 2):
        out.append(f"channels must be 1 (mono) or 2 (stereo), not {cfg.channels!r}")
    out += [f"{k} must be at least 1, not {getattr(cfg, k)}" for k in _AT_LEAST_ONE if getattr(cfg, k) < 1]
    for key in ("learning_rate", "fine_tune_learning_rate"):
        value = getattr(cfg, key)
        if not (math.isfinite(value) and value > 0):
            out.append(f"{key} must be a number above 0 (the paper: 1e-4, fine-tuning 1e-5), not {value}")
    for key in ("beta_1", "beta_2"):
        if not 0 <= getattr(cfg, key) < 1:
            out.append(f"{key} must be at least 0 and below 1 (Adam), not {getattr(cfg, key)}")
    if cfg.max_epochs < 0:
        out.append(f"max_epochs must be 0 (no limit) or more, not {cfg.max_epochs}")
    if not (math.isfinite(cfg.leaky_relu_alpha) and cfg.leaky_relu_alpha >= 0):
        out.append(f"leaky_relu_alpha must be at least 0, not {cfg.leaky_relu_alpha}")
    if not 0 < cfg.augment_gain_min <= cfg.augment_gain_max < math.inf:
        out.append(f"augment_gain_min and augment_gain_max must satisfy 0 < min <= max, not "
                   f"{cfg.augment_gain_min} and {cfg.augment_gain_max}")
    if len(cfg.sources) < 1 or len(set(cfg.sources)) != len(cfg.sources):
        out.append(f"sources must be distinct names, not {list(cfg.sources)}")
    if cfg.output_type == "difference" and len(cfg.sources) < 2:
        out.append("the difference output needs at least two sources")
    if not out:
        out += _window_problems(cfg)
    return out


def _window_problems(cfg: WaveUNetConfig) -> list[str]:
    """Whether one training window exists and fits in memory (see :data:`MAX_INPUT_LENGTH`)."""
    why = f"one training batch must fit in memory: at most {MAX_INPUT_LENGTH} (2**22) input samples per window"
    if cfg.num_layers > MAX_LAYERS:
        return [f"num_layers must be at most {MAX_LAYERS}, not {cfg.num_layers}: each layer halves the time "
                f"resolution, so a window spans at least 2**num_layers samples, and {why}"]
    try:
        length = shapes.training_lengths(cfg)[0]
    except UserError as e:
        return [str(e)]
    if length <= MAX_INPUT_LENGTH:
        return []
    # plain namespaces: the lengths of shallower networks, without checking them as configs
    shallower = (types.SimpleNamespace(**{**dataclasses.asdict(cfg), "num_layers": n})
                 for n in range(1, cfg.num_layers))
    fits = [c.num_layers for c in shallower if shapes.training_lengths(c)[0] <= MAX_INPUT_LENGTH]
    hint = f"num_layers {max(fits)} fits" if fits else "lower requested_output"
    return [f"num_layers={cfg.num_layers} with requested_output={cfg.requested_output} makes a training window "
            f"of {length} input samples, and {why} ({hint})"]


def split_derived(d: dict) -> dict:
    """Remove the :data:`DERIVED_KEYS` from ``d`` (in place) and return them."""
    return {k: d.pop(k) for k in DERIVED_KEYS if k in d}


def check_derived(cfg: WaveUNetConfig, derived: dict, source: str) -> WaveUNetConfig:
    """``cfg``, if the lengths a file recorded (``derived``) are what its settings give; else one line."""
    for key in ("input_length", "output_length"):
        if key in derived and derived[key] != getattr(cfg, key):
            raise UsageError(f"{source} says {key}={derived[key]} but its settings give {getattr(cfg, key)}")
    return cfg


def read_json_object(path, what: str, error=UserError) -> dict:
    """The JSON object in ``path``, or a one-line ``error`` naming ``what`` and the file."""
    path = Path(path)
    try:
        d = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as e:
        raise error(f"{what} {path} does not exist") from e
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not UTF-8 text (byte {e.start}); save it as UTF-8 JSON") from e
    except json.JSONDecodeError as e:
        raise error(f"{what} {path} is not valid JSON: {e}") from e
    if not isinstance(d, dict):
        raise error(f"{what} {path} must hold a JSON object of config keys")
    return d


def field_names() -> list[str]:
    """The config keys, in declaration order."""
    return [f.name for f in dataclasses.fields(WaveUNetConfig)]


def _coerce(key: str, value: Any) -> Any:
    """Coerce a value (possibly a string from ``--set``) to the field's type, or fail with one line."""
    default = {f.name: f.default for f in dataclasses.fields(WaveUNetConfig)}[key]
    try:
        return _coerced(default, value)
    except (TypeError, ValueError, OverflowError) as e:
        kind = type(default).__name__ if not isinstance(default, tuple) else "comma-separated list"
        raise UsageError(f"config key {key!r} needs a {kind}, not {value!r}") from e


def _coerced(default, value):
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, (bool, int)) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if isinstance(default, int):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return tuple(str(v) for v in value)
    return str(value)


def parse_overrides(pairs) -> dict:
    """``["key=value", ...]`` from ``--set`` to a dict (values coerced later by :meth:`WaveUNetConfig.replace`)."""
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set needs KEY=VALUE, not {pair!r}")
        key = key.strip()
        if key not in field_names():
            raise UsageError(f"unknown config key {key!r}; known keys: {', '.join(field_names())}")
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
    """The paper's variants: M1 .. M7 and M5-HighSR."""
    return [k for k in reference_facts() if not k.startswith("_") and k != "training"]


def variant_config(name: str, **overrides) -> WaveUNetConfig:
    """The config of a paper variant (``M1`` .. ``M7``, ``M5-HighSR``), with optional overrides."""
    facts = reference_facts()
    if name not in variant_names():
        raise UsageError(f"unknown variant {name!r}; known variants: {', '.join(variant_names())}")
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


# --- the --quick preset ------------------------------------------------------------------------------
# A variant of the same kind, small enough to train in minutes on 2 CPU cores (`train --quick`, `reproduce
# --quick`, the demo). It keeps what makes a variant what it is (context or not, channels, difference or direct
# output, output activation, linear or learned upsampling, the sources) and shrinks what only costs time.
QUICK = {
    "num_layers": 8,  # the receptive field still spans ~0.2 s at 8192 Hz
    "num_initial_filters": 16,
    "sample_rate": 8192,  # synthetic sources separate well below 4 kHz
    "requested_output": 4096,  # 0.5 s of output per window
    "batch_size": 8,
    "learning_rate": 3e-4,  # a small model and a short schedule tolerate a larger step
    "steps_per_epoch": 100,
    "patience": 3,
    "fine_tune_patience": 2,
    "fine_tune_learning_rate": 3e-5,
    "max_epochs": 8,  # per stage: the run ends even if it keeps improving
}


def quick_config(config: WaveUNetConfig) -> WaveUNetConfig:
    """``config`` with the :data:`QUICK` sizes; the variant's kind (see above) is unchanged."""
    overrides = dict(QUICK)
    # M7's batch (4 instead of 16) keeps its ratio to the other variants' batch
    overrides["batch_size"] = max(2, config.batch_size * QUICK["batch_size"] // 16)
    return config.replace(description=f"{config.description} (--quick preset)".strip(), **overrides)


# --- resolving a run's config --------------------------------------------------------------------------
def resolve_config(variant=None, config_file=None, sets=(), quick=False, jit=False, run_dir=None,
                   base=None) -> WaveUNetConfig:
    """The run's config: the variant's defaults, then the quick preset, then ``config_file`` (a JSON object of
    config keys, may name a ``variant``), then the ``sets`` (``["key=value", ...]``); ``jit`` sets
    ``jit_compile``. Without a variant (and no file naming one), ``base`` (a starting model's config, for
    ``--init``) takes the variant's place, or else the config saved in ``run_dir`` is used (to resume).
    Every problem is a :class:`UsageError` (exit code 2): these are the user's arguments."""
    file_keys = read_json_object(config_file, "config file", error=UsageError) if config_file else {}
    named = file_keys.pop("variant", None)
    if variant and named and named != variant:
        raise UsageError(f"config file {config_file} is for variant {named}, not {variant}")
    variant = variant or named
    overrides = parse_overrides(sets)
    jit_key = {"jit_compile": True} if jit else {}
    if not variant and base is None:
        saved = Path(run_dir) / "config.json" if run_dir is not None else None
        if saved is None or not saved.is_file():
            raise UsageError("--variant is required (or a --config naming one, or --resume of an existing run)")
        if quick or file_keys or overrides:  # the saved config is already resolved; changes need the variant
            raise UsageError("give --variant (and the same --quick/--config/--set as the first run) to resume "
                             "with explicit settings")
        return WaveUNetConfig.from_json(saved).replace(**jit_key)
    derived = split_derived(file_keys)
    unknown = sorted(set(file_keys) - set(field_names()))
    if unknown:
        raise UsageError(f"config file {config_file} has an unknown config key {unknown[0]!r}; known keys: "
                         f"{', '.join(field_names())}")
    config = variant_config(variant) if variant else base
    if quick:
        config = quick_config(config)
    config = config.replace(**{**file_keys, **overrides, **jit_key})  # checked together, once
    return check_derived(config, derived, f"config file {config_file}")
