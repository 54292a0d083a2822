"""YAML run config → validated, immutable `RunConfig`.

Everything a user can get wrong is checked here, before any model loads, and reported as one line that names the
file and key and says what is allowed. `--set a.b=v` overrides go through the same checks.
"""

from __future__ import annotations

import difflib
import os
import re
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fbgen.core.errors import BadInput
from fbgen.families import FAMILIES, FamilyRules

OFFLOADS = ("none", "idle", "group")
DTYPES = ("auto", "bfloat16", "float16", "float32")
BOUNDARY_UNITS = ("fraction", "step", "sigma")
MODEL_ALIASES = {"large": "L", "small": "S", "medium": "M"}
FILENAME_FIELDS = ("slug", "id", "seed", "schedule", "steps", "index")
DEFAULT_FILENAME = "{slug}-{id}-{seed}-{schedule}"  # the id makes names unique per item
PAPER_BOUNDARIES = (0.4, 0.8)  # LSL at 40/40/20 (FlowBlending paper)

KEYS = (
    "family", "models", "text_encoder", "vae", "schedule", "boundaries", "boundary_unit", "steps", "solver",
    "shift", "guidance_scale", "seed", "prompt", "prompts", "negative_prompt", "height", "width", "num_frames",
    "fps", "dtype", "device", "offload", "output_dir", "filename", "compile", "attention_backend", "decode_timestep",
    "decode_noise_scale", "cache", "lora",
)  # fmt: skip
CACHES = {  # diffusers cache hooks fbgen offers (each family says which work for it): config class, settings passed on
    "first_block": ("FirstBlockCacheConfig", ("threshold",)),
    "taylorseer": ("TaylorSeerCacheConfig", ("cache_interval", "disable_cache_before_step", "disable_cache_after_step",
                                             "max_order")),
    "seacache": ("SeaCacheConfig", ("threshold", "residual_order", "retention_steps", "cache_end_steps",
                                    "max_consecutive_cached")),
}  # fmt: skip


def _number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def cache_hook(spec: Mapping[str, Any], rules: FamilyRules) -> Any:
    """The diffusers cache config for one model's `{type, settings}` (its own checks raise ValueError/TypeError)."""
    import diffusers

    settings = {k: v for k, v in spec.items() if k != "type"}
    if spec["type"] == "taylorseer":
        settings["cache_identifiers"] = [rules.block_units]
    return getattr(diffusers, CACHES[spec["type"]][0])(**settings)


@dataclass(frozen=True)
class ModelRef:
    """A model source: a hub id or a local diffusers directory, optionally pinned to a revision."""

    id: str
    revision: str | None = None


@dataclass(frozen=True)
class RunConfig:
    family: str
    models: dict[str, ModelRef]
    schedule: str
    boundaries: tuple[float, ...]
    boundary_unit: str
    steps: int
    solver: str
    shift: float
    guidance_scale: dict[str, float]
    seed: int
    prompts: tuple[str, ...]
    negative_prompt: str
    height: int
    width: int
    num_frames: int
    fps: int
    dtype: str
    device: str
    offload: str
    output_dir: str
    filename: str
    compile: bool
    attention_backend: str | None
    cache: dict[str, dict[str, Any]]  # model letter → {type, settings}; empty: no cache
    lora: dict[str, dict[str, Any]]  # model letter → {path, scale, weight_name, fuse}
    decode_timestep: float | None  # LTX only
    decode_noise_scale: float | None
    text_encoder: ModelRef | None = None
    vae: ModelRef | None = None
    source: str = field(default="<config>", compare=False)

    @property
    def large(self) -> str:
        """The letter of the large model: `L` when declared, else the first one."""
        return "L" if "L" in self.models else next(iter(self.models))

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (for manifests and `fbgen plan`)."""
        data = asdict(self)
        data.pop("source")
        data["boundaries"] = list(self.boundaries)
        data["prompts"] = list(self.prompts)
        return data


def load_config(path: str | os.PathLike, overrides: list[str] | None = None, **cli: Any) -> RunConfig:
    """Read a YAML file, apply `--set` overrides and CLI options (`schedule=`, `output_dir=`), validate."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"{path}: cannot read config ({e.strerror or e})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise BadInput(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadInput(f"{path}: a run config must be a YAML mapping of keys, got {type(raw).__name__}")
    overridden = set()
    for item in overrides or []:
        overridden.add(apply_override(raw, item))
    for key, value in cli.items():
        if value is not None:
            raw[key] = value
            overridden.add(key)
    return validate(raw, str(path), overridden)


def apply_override(raw: dict, item: str) -> str:
    """`a.b=value`: the value is parsed as YAML (so `steps=30` is an int, `boundaries=[0.3,0.8]` a list).

    Returns the top-level key it set, so errors can name `--set KEY` rather than the file."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise BadInput(f"--set {item!r}: expected key=value, e.g. --set steps=30 or --set models.S=path/to/model")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    if parts[0] in ("models", "guidance_scale") and len(parts) == 2:
        if isinstance(raw.get(parts[0]), dict):  # `small:` in the file and `--set models.S=` mean one model
            raw[parts[0]] = {MODEL_ALIASES.get(str(k).lower(), k): v for k, v in raw[parts[0]].items()}
        parts[1] = MODEL_ALIASES.get(parts[1].lower(), parts[1])
    if parts == ["prompt"] or parts == ["prompts"]:  # one replaces the other
        raw.pop("prompts" if parts == ["prompt"] else "prompt", None)
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return parts[0]


def validate(raw: Mapping[str, Any], source: str = "<config>", overridden: set[str] | None = None) -> RunConfig:
    """Check every key and return the resolved config; the first problem found raises `BadInput`."""
    c = _Checker(raw, source, overridden or set())
    for key in raw:
        if key not in KEYS:
            hint = difflib.get_close_matches(str(key), KEYS, n=1)
            did_you_mean = f"; did you mean '{hint[0]}'?" if hint else f"; valid keys: {', '.join(KEYS)}"
            raise c.fail(str(key), f"unknown key{did_you_mean}")

    family = c.choice("family", tuple(FAMILIES), "wan")
    rules = FAMILIES[family]
    for key in {k for r in FAMILIES.values() for k in r.options} - set(rules.options):
        if raw.get(key) is not None:
            raise c.fail(key, f"only for family {', '.join(f for f, r in FAMILIES.items() if key in r.options)}")
    models = c.models(dict(rules.default_models))
    schedule = c.schedule(models)
    height_default, width_default, frames_default = rules.default_size
    steps = c.integer("steps", 50, minimum=1)
    boundaries, unit = c.boundaries(schedule, steps)
    height = c.integer("height", height_default, minimum=1)
    width = c.integer("width", width_default, minimum=1)
    num_frames = c.integer("num_frames", frames_default, minimum=1)
    if height % rules.size_multiple or width % rules.size_multiple:
        key = "height" if height % rules.size_multiple else "width"
        raise c.fail(key, f"{family} needs height and width divisible by {rules.size_multiple}, got {height}x{width}")
    if (num_frames - 1) % rules.frame_step:
        k = (num_frames - 1) // rules.frame_step
        raise c.fail("num_frames", f"{family} needs {rules.frame_step}k+1 frames "
                                   f"(e.g. {rules.frame_step * k + 1} or {rules.frame_step * (k + 1) + 1}), "
                                   f"got {num_frames}")  # fmt: skip
    return RunConfig(
        family=family,
        models=models,
        schedule=schedule,
        boundaries=boundaries,
        boundary_unit=unit,
        steps=steps,
        solver=c.choice("solver", rules.solvers, rules.solvers[0]),
        shift=None
        if raw.get("shift") is None and rules.default_shift is None
        else c.number("shift", rules.default_shift, positive=True),
        guidance_scale=c.guidance(models),
        seed=c.integer("seed", 0, minimum=0),
        prompts=c.prompts(),
        negative_prompt=c.string("negative_prompt", ""),
        height=height,
        width=width,
        num_frames=num_frames,
        fps=c.integer("fps", rules.default_fps, minimum=1),
        dtype=c.choice("dtype", DTYPES, "auto"),
        device=c.device(),
        offload=c.choice("offload", OFFLOADS, "none"),
        output_dir=c.output_dir(),
        filename=c.filename(),
        compile=c.boolean("compile", False),
        attention_backend=c.attention_backend(),
        cache=c.cache(models, rules),
        lora=c.lora(models),
        decode_timestep=c.number("decode_timestep", 0.0) if "decode_timestep" in rules.options else None,
        decode_noise_scale=None if raw.get("decode_noise_scale") is None else c.number("decode_noise_scale", 0.0),
        text_encoder=c.model_ref("text_encoder", raw.get("text_encoder")) if raw.get("text_encoder") else None,
        vae=c.model_ref("vae", raw.get("vae")) if raw.get("vae") else None,
        source=source,
    )


class _Checker:
    """Typed getters that raise one-line `BadInput` errors naming the source file and key."""

    def __init__(self, raw: Mapping[str, Any], source: str, overridden: set[str]):
        self.raw, self.source, self.overridden = raw, source, overridden

    def fail(self, key: str, message: str) -> BadInput:
        top = key.split(".")[0]
        where = f"--set {key}" if top in self.overridden else f"{self.source}: key '{key}'"
        return BadInput(f"{where}: {message}")

    def integer(self, key: str, default: int, minimum: int | None = None) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value}")
        return value

    def number(self, key: str, default: float, positive: bool = False, value: Any = None) -> float:
        value = self.raw.get(key, default) if value is None else value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, got {value!r}")
        if positive and value <= 0:
            raise self.fail(key, f"must be > 0, got {value}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def string(self, key: str, default: str) -> str:
        value = self.raw.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {value!r}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.raw.get(key, default)
        if value not in allowed:
            raise self.fail(key, f"must be one of {', '.join(allowed)}; got {value!r}")
        return value

    def model_ref(self, key: str, value: Any) -> ModelRef:
        if isinstance(value, str) and value.strip():
            return ModelRef(value.strip())
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            extra = set(value) - {"id", "revision"}
            if extra:
                raise self.fail(key, f"unknown field(s) {sorted(extra)}; a model is a string or {{id, revision}}")
            revision = value.get("revision")
            return ModelRef(value["id"], None if revision is None else str(revision))
        raise self.fail(key, f"expected a hub id, a local directory or {{id: ..., revision: ...}}, got {value!r}")

    def models(self, defaults: dict[str, str]) -> dict[str, ModelRef]:
        """The declared models; a family with shipped models (demo) fills in the letters a config leaves out."""
        value = self.raw.get("models", {} if defaults else None)
        if defaults and isinstance(value, dict):
            declared = {MODEL_ALIASES.get(str(name).lower(), str(name)) for name in value}
            value = {**{k: v for k, v in defaults.items() if k not in declared}, **value}
        if not isinstance(value, dict) or not value:
            raise self.fail("models", "expected a map of models, e.g. {large: Wan-AI/Wan2.1-T2V-14B-Diffusers, "
                                      "small: Wan-AI/Wan2.1-T2V-1.3B-Diffusers}")  # fmt: skip
        models: dict[str, ModelRef] = {}
        for name, ref in value.items():
            letter = MODEL_ALIASES.get(str(name).lower(), str(name))
            if not re.fullmatch(r"[A-Z]", letter):
                raise self.fail(f"models.{name}", "a model is named by one capital letter (L, S, M, ...) "
                                                  f"or by {', '.join(MODEL_ALIASES)}")  # fmt: skip
            if letter in models:
                raise self.fail(f"models.{name}", f"model letter {letter} is declared twice")
            models[letter] = self.model_ref(f"models.{name}", ref)
        return models

    def schedule(self, models: dict[str, ModelRef]) -> str:
        default = "LSL" if {"L", "S"} <= set(models) else next(iter(models)) * 3
        value = self.raw.get("schedule", default)
        if not isinstance(value, str) or not re.fullmatch(r"[A-Z]+", value.strip()):
            raise self.fail("schedule", f"expected capital letters such as LSL, LLL or SSS, got {value!r}")
        value = value.strip()
        missing = sorted(set(value) - set(models))
        if missing:
            raise self.fail("schedule", f"letter(s) {', '.join(missing)} of {value} name no model; "
                                        f"declared under models: {', '.join(models)}")  # fmt: skip
        return value

    def boundaries(self, schedule: str, steps: int) -> tuple[tuple[float, ...], str]:
        needed = len(schedule) - 1
        value = self.raw.get("boundaries")
        if value is None:
            if needed == 0:
                return (), self.choice("boundary_unit", BOUNDARY_UNITS, "fraction")
            if needed == 2:
                value = list(PAPER_BOUNDARIES)
            else:
                example = [round((i + 1) / len(schedule), 2) for i in range(needed)]
                raise self.fail("boundaries", f"schedule {schedule} needs {needed} boundaries, e.g. {example}")
        if not isinstance(value, (list, tuple)) or len(value) != needed:
            raise self.fail("boundaries", f"schedule {schedule} has {len(schedule)} stages and needs a list of "
                                          f"{needed} boundaries, got {value!r}")  # fmt: skip
        values = [self.number("boundaries", 0.0, value=v) for v in value]
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        inferred = "step" if value and ints else "fraction"
        unit = self.choice("boundary_unit", BOUNDARY_UNITS, inferred)
        if unit == "fraction":
            if not all(0 < v < 1 for v in values) or values != sorted(values):
                raise self.fail("boundaries", f"fractions must lie in (0, 1) and not decrease, got {list(value)}")
        elif unit == "step":
            if not all(float(v).is_integer() and 0 < v < steps for v in values) or values != sorted(values):
                raise self.fail("boundaries", f"step indices must be integers in 1..{steps - 1} that do not "
                                              f"decrease, got {list(value)}")  # fmt: skip
        elif not all(0 < v < 1 for v in values) or values != sorted(values, reverse=True):
            raise self.fail("boundaries", f"sigma thresholds must lie in (0, 1) and not increase (noise falls "
                                          f"over the trajectory), got {list(value)}")  # fmt: skip
        return tuple(values), unit

    def guidance(self, models: dict[str, ModelRef]) -> dict[str, float]:
        value = self.raw.get("guidance_scale", 5.0)
        if isinstance(value, dict):
            scales = {}
            for name, v in value.items():
                letter = MODEL_ALIASES.get(str(name).lower(), str(name))
                if letter not in models:
                    raise self.fail(f"guidance_scale.{name}", f"names no model; declared: {', '.join(models)}")
                scales[letter] = self.number(f"guidance_scale.{name}", 0.0, value=v)
            missing = sorted(set(models) - set(scales))
            if missing:
                raise self.fail("guidance_scale", f"no scale for model(s) {', '.join(missing)}")
            return scales
        scale = self.number("guidance_scale", 5.0)
        if scale < 0:
            raise self.fail("guidance_scale", f"must be >= 0, got {scale}")
        return dict.fromkeys(models, scale)

    def prompts(self) -> tuple[str, ...]:
        if "prompt" in self.raw and "prompts" in self.raw:
            raise self.fail("prompts", "give either 'prompt' (one) or 'prompts' (a list), not both")
        if "prompts" in self.raw:
            value = self.raw["prompts"]
            if not isinstance(value, list) or not value or not all(isinstance(p, str) and p.strip() for p in value):
                raise self.fail("prompts", "expected a non-empty list of non-empty strings")
            return tuple(p.strip() for p in value)
        value = self.raw.get("prompt")
        if not isinstance(value, str) or not value.strip():
            raise self.fail("prompt", "expected a non-empty string (or 'prompts:' with a list)")
        return (value.strip(),)

    def device(self) -> str:
        value = self.raw.get("device", "auto")
        if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise self.fail("device", f"must be auto, cpu, cuda or cuda:N; got {value!r}")
        if value.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise self.fail("device", f"{value} was asked for but CUDA is not available on this machine; "
                                          "use device: cpu or auto")  # fmt: skip
            index = int(value.partition(":")[2] or 0)
            if index >= torch.cuda.device_count():
                raise self.fail("device", f"{value} does not exist; this machine has "
                                          f"{torch.cuda.device_count()} CUDA device(s)")  # fmt: skip
        return value

    def cache(self, models: dict[str, ModelRef], rules: FamilyRules) -> dict[str, dict[str, Any]]:
        """`{type: first_block, threshold: 0.05}` for every model, or per model: `{L: {...}, S: none}`."""
        value, kinds = self.raw.get("cache"), rules.caches
        if value in (None, "none", False):
            return {}
        if not isinstance(value, dict):
            raise self.fail("cache", f"expected {{type: {'|'.join(kinds)}, ...}} or one such per model")
        per_model = value if "type" not in value else {m: value for m in models}
        out = {}
        for letter, spec in per_model.items():
            letter = MODEL_ALIASES.get(letter, letter)
            key = f"cache.{letter}" if "type" not in value else "cache"
            if letter not in models:
                raise self.fail(key, f"names no model; models are {', '.join(models)}")
            if spec in (None, "none", False):
                continue
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind not in kinds:
                raise self.fail(key, f"type must be one of {', '.join(kinds)} (family {rules.name}); got {kind!r}")
            valid = CACHES[kind][1]
            extra = set(spec) - {"type", *valid}
            if extra:
                raise self.fail(key, f"unknown setting(s) {sorted(extra)} for {kind}; valid: {', '.join(valid)}")
            wrong = sorted(k for k, v in spec.items() if k != "type" and not _number_or_none(v))
            if wrong:
                raise self.fail(key, f"{kind} setting(s) {wrong} must be numbers")
            try:
                cache_hook(spec, rules)
            except (TypeError, ValueError) as e:
                raise self.fail(key, f"{kind}: {str(e).splitlines()[0]}") from None
            out[letter] = dict(spec)
        return out

    def lora(self, models: dict[str, ModelRef]) -> dict[str, dict[str, Any]]:
        """Per model: `{S: path}` or `{S: {path: ..., scale: 1.0, weight_name: ..., fuse: false}}` (safetensors
        only); `fuse` merges the LoRA into the weights at load, so sampling pays nothing for it."""
        value = self.raw.get("lora")
        if value in (None, "none", False, {}):
            return {}
        if not isinstance(value, dict):
            raise self.fail("lora", "expected a LoRA per model letter, e.g. {S: path/to/lora.safetensors}")
        out = {}
        for letter, spec in value.items():
            letter = MODEL_ALIASES.get(letter, letter)
            key = f"lora.{letter}"
            if letter not in models:
                raise self.fail(key, f"names no model; models are {', '.join(models)}")
            spec = {"path": spec} if isinstance(spec, str) else spec
            if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec["path"].strip():
                raise self.fail(key, "expected a path (file, directory or hub id) or {path, scale, weight_name, fuse}")
            extra = set(spec) - {"path", "scale", "weight_name", "fuse"}
            if extra:
                raise self.fail(key, f"unknown field(s) {sorted(extra)}; valid: path, scale, weight_name, fuse")
            scale = self.number(key, 1.0, value=spec.get("scale", 1.0))
            fuse = spec.get("fuse", False)
            if not isinstance(fuse, bool):
                raise self.fail(f"{key}.fuse", f"expected true or false, got {fuse!r}")
            out[letter] = {"path": spec["path"], "scale": scale, "weight_name": spec.get("weight_name"), "fuse": fuse}
        return out

    def attention_backend(self) -> str | None:
        """A backend of diffusers' attention dispatcher; hub-kernel backends are refused (nothing is downloaded)."""
        value = self.raw.get("attention_backend")
        if value is None:
            return None
        from diffusers.models.attention_dispatch import AttentionBackendName

        allowed = tuple(b.value for b in AttentionBackendName if "hub" not in b.value)
        return self.choice("attention_backend", allowed, "native")

    def output_dir(self) -> str:
        value = self.string("output_dir", "outputs")
        path = Path(value).expanduser().resolve()
        probe = path
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
            raise self.fail("output_dir", f"{value} is not writable ({probe} is not a writable directory)")
        return str(path)

    def filename(self) -> str:
        value = self.string("filename", DEFAULT_FILENAME)
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as e:
            raise self.fail("filename", f"not a valid template ({e})") from None
        unknown = fields - set(FILENAME_FIELDS)
        if unknown or "/" in value or "\\" in value or not value.strip() or value.startswith("."):
            raise self.fail("filename", f"a file name template without '/', using only "
                                        f"{{{'}, {'.join(FILENAME_FIELDS)}}}; got {value!r}")  # fmt: skip
        return value
