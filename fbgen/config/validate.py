"""Raw mapping → validated `RunConfig`. Pure: no probes of the machine (those are `fbgen.engine.preflight`), no
files touched. Everything a user can get wrong is one line naming the file (or `--set`) and the key, quoting at most
a short prefix of the bad value, and saying what is allowed.
"""

from __future__ import annotations

import difflib
import math
import re
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from fbgen.config.schema import (
    BOUNDARY_UNITS,
    CACHES,
    DTYPES,
    FILE_KEYS,
    FILENAME_FIELDS,
    MODEL_ALIASES,
    OFFLOADS,
    OUTPUT_FORMATS,
    QUANTIZATIONS,
    ModelRef,
    RunConfig,
    experts,
    keys,
)  # fmt: skip
from fbgen.core.boundaries import PAPER_BOUNDARIES
from fbgen.core.errors import BadInput
from fbgen.families import FAMILIES, FamilySpec

LIMITS = {f.name: f.metadata for f in fields(RunConfig)}


def show(value: Any, limit: int = 40) -> str:
    """A bad value as an error line quotes it: its repr, cut to a short prefix."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cache_hook(spec: Mapping[str, Any], family: FamilySpec) -> Any:
    """The diffusers cache config for one model's `{type, settings}` (its own checks raise ValueError/TypeError)."""
    import diffusers

    settings = {k: v for k, v in spec.items() if k != "type"}
    if spec["type"] == "taylorseer":
        settings["cache_identifiers"] = [family.block_units]
    return getattr(diffusers, CACHES[spec["type"]][0])(**settings)


def with_family_defaults(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """A family with a packaged default config (demo) fills in every key a config leaves out; a config's own
    `prompt` or `prompts` replaces the default prompts."""
    spec = FAMILIES.get(raw.get("family")) if isinstance(raw.get("family"), str) else None
    if spec is None or not spec.default_config:
        return raw
    prompted = {"prompt", "prompts"} & set(raw)
    return {**{k: v for k, v in spec.default_config.items() if not (prompted and k in ("prompt", "prompts"))}, **raw}


def validate(raw: Mapping[str, Any], source: str = "<config>", overridden: set[str] | None = None,
             base: RunConfig | None = None, read_switch: Callable[[ModelRef], float | None] | None = None
             ) -> RunConfig:  # fmt: skip
    """Check every key and return the resolved config; the first problem found raises `BadInput`.

    With `base`, `raw` holds per-job changes only (a batch item, a compare variant): load-time keys are refused,
    every other key is taken from `base` unless `raw` changes it, and only what changed is checked again.
    `read_switch` reads a two-expert checkpoint's `boundary_ratio` (`fbgen.config.loading` passes one that reads
    model_index.json); it is asked only when a schedule of just those experts leaves `boundaries` out."""
    if base is not None:
        load = sorted(set(raw) & set(keys("load")))
        if load:
            raise BadInput(f"{source}: {', '.join(load)} cannot change per video (fixed when the models load); "
                           f"render those with their own config")  # fmt: skip
        raw = {**base_raw(base), **raw}
    else:
        raw = with_family_defaults(raw)
    c = _Checker(raw, source, overridden or set())
    for name in raw:
        if name not in FILE_KEYS:
            hint = difflib.get_close_matches(str(name), FILE_KEYS, n=1)
            did_you_mean = f"; did you mean '{hint[0]}'?" if hint else f"; valid keys: {', '.join(FILE_KEYS)}"
            raise c.fail(str(name)[:40], f"unknown key{did_you_mean}")
    family = FAMILIES[base.family if base is not None else c.choice("family", tuple(FAMILIES), "wan")]
    for name in {k for f in FAMILIES.values() for k in f.options} - set(family.options):
        if raw.get(name) is not None:
            raise c.fail(name, f"only for family {', '.join(f for f, s in FAMILIES.items() if name in s.options)}")
    if base is not None:
        models, load = base.models, {k: getattr(base, k) for k in keys("load")}
    else:
        models = c.models(dict(family.default_models))
        load = dict(
            family=family.name, models=models, text_encoder=c.optional_ref("text_encoder"),
            vae=c.optional_ref("vae"), dtype=c.choice("dtype", DTYPES, "auto"), device=c.device(),
            offload=c.choice("offload", OFFLOADS, "none"), compile=c.boolean("compile", False),
            attention_backend=c.attention_backend(), cache=c.cache(models, family), lora=c.lora(models),
            quantization=c.quantization(models), memory_budget=c.memory_budget(),
        )  # fmt: skip
    schedule = c.schedule(models)
    steps = c.integer("steps", 50)
    if steps < family.min_steps:
        raise c.fail("steps", f"{family.name} needs at least {family.min_steps} steps, got {steps}")
    switch = base.expert_switch if base is not None else None
    pair = experts(models)
    if pair and schedule == "".join(pair) and raw.get("boundaries") in (None, []):
        if switch is None and read_switch is not None:
            switch = read_switch(models[pair[0]])
        if switch is None:
            raise c.fail("boundaries", f"schedule {schedule} needs 1 boundary and the checkpoint's boundary_ratio "
                                       f"was not read; e.g. boundaries: [0.875] with boundary_unit: sigma")  # fmt: skip
        boundaries, unit = (switch,), "sigma"  # WanPipeline's own switch
    else:
        boundaries, unit = c.boundaries(schedule, steps)
    height_default, width_default, frames_default = family.default_size
    height, width = c.integer("height", height_default), c.integer("width", width_default)
    num_frames = c.integer("num_frames", frames_default)
    if height % family.size_multiple or width % family.size_multiple:
        name = "height" if height % family.size_multiple else "width"
        raise c.fail(name, f"{family.name} needs height and width divisible by {family.size_multiple}, "
                           f"got {height}x{width}")  # fmt: skip
    if (num_frames - 1) % family.frame_step:
        k = (num_frames - 1) // family.frame_step
        raise c.fail("num_frames", f"{family.name} needs {family.frame_step}k+1 frames "
                                   f"(e.g. {family.frame_step * k + 1} or {family.frame_step * (k + 1) + 1}), "
                                   f"got {num_frames}")  # fmt: skip
    options = "decode_timestep" in family.options
    return RunConfig(
        **load,
        prompts=c.prompts(),
        negative_prompt=c.string("negative_prompt", ""),
        seed=c.integer("seed", 0),
        height=height,
        width=width,
        num_frames=num_frames,
        fps=c.integer("fps", family.default_fps),
        schedule=schedule,
        boundaries=boundaries,
        boundary_unit=unit,
        steps=steps,
        solver=c.choice("solver", family.solvers, family.solvers[0]),
        shift=None if raw.get("shift") is None and family.default_shift is None
        else c.number("shift", family.default_shift),
        guidance_scale=c.guidance(models),
        max_sequence_length=c.integer("max_sequence_length", family.max_sequence_length),
        decode_timestep=c.number("decode_timestep", 0.0) if options else None,
        decode_noise_scale=None if raw.get("decode_noise_scale") is None else c.number("decode_noise_scale", 0.0),
        output_dir=c.output_dir(),
        filename=c.filename(),
        outputs=c.outputs(),
        crf=c.integer("crf", 10),
        source=source,
        expert_switch=switch,
    )


def base_raw(config: RunConfig) -> dict[str, Any]:
    """A validated config's per-job keys as raw values again (what `validate(..., base=)` starts from)."""
    data = {k: getattr(config, k) for k in keys("job")}
    data["boundaries"], data["outputs"] = list(config.boundaries), list(config.outputs)
    data["prompt"] = data.pop("prompts")[0] if config.prompts else None
    return {k: v for k, v in data.items() if v is not None}


def apply_changes(config: RunConfig, changes: Mapping[str, Any], source: str) -> RunConfig:
    """The config with per-job `changes` (a batch item, a compare variant), checked as the file's own keys are."""
    if not changes:
        return config
    changed = validate(dict(changes), source, base=config)
    return replace(changed, source=config.source)


class _Checker:
    """Typed getters that raise one-line `BadInput` errors naming the source file and key."""

    def __init__(self, raw: Mapping[str, Any], source: str, overridden: set[str]):
        self.raw, self.source, self.overridden = raw, source, overridden

    def fail(self, name: str, message: str) -> BadInput:
        top = name.split(".")[0]
        where = f"--set {name}" if top in self.overridden else f"{self.source}: key '{name}'"
        return BadInput(f"{where}: {message}")

    def _range(self, name: str, value: float, limits: Mapping[str, Any]) -> None:
        low, high = limits.get("minimum"), limits.get("maximum")
        if low is not None and (value < low or (limits.get("exclusive") and value == low)):
            raise self.fail(name, f"must be {'>' if limits.get('exclusive') else '>='} {low}, got {show(value)}")
        if high is not None and value > high:
            raise self.fail(name, f"must be <= {high}, got {show(value)}")

    def integer(self, name: str, default: int) -> int:
        value = self.raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"expected an integer, got {show(value)}")
        self._range(name, value, LIMITS.get(name, {}))
        return value

    def number(self, name: str, default: float | None, value: Any = None, limits: Mapping[str, Any] | None = None
               ) -> float:  # fmt: skip
        value = self.raw.get(name, default) if value is None else value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(name, f"expected a number, got {show(value)}")
        if not math.isfinite(value):
            raise self.fail(name, f"must be a finite number, got {show(value)}")
        self._range(name, value, LIMITS.get(name.split(".")[0], {}) if limits is None else limits)
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {show(value)}")
        return value

    def string(self, name: str, default: str) -> str:
        value = self.raw.get(name, default)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, got {show(value)}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.raw.get(name, default)
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(name, f"must be one of {', '.join(allowed)}; got {show(value)}")
        return value

    def optional_ref(self, name: str) -> ModelRef | None:
        return self.model_ref(name, self.raw[name]) if self.raw.get(name) else None

    def model_ref(self, name: str, value: Any) -> ModelRef:
        if isinstance(value, str) and value.strip():
            return ModelRef(value.strip())
        if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"].strip():
            extra = set(value) - {"id", "revision", "subfolder", "file"}
            if extra:
                raise self.fail(name, f"unknown field(s) {show(sorted(map(str, extra)))}; a model is a string or "
                                      "{id, revision, subfolder, file}")  # fmt: skip
            revision, subfolder, file = value.get("revision"), value.get("subfolder"), value.get("file")
            if file is not None and not (isinstance(file, str) and file.lower().endswith(".gguf")):
                raise self.fail(f"{name}.file", f"expected a GGUF file (*.gguf; other weights load as safetensors "
                                                f"from id), got {show(file)}")  # fmt: skip
            if subfolder is not None and not (isinstance(subfolder, str) and re.fullmatch(r"[\w.-]+", subfolder)
                                              and subfolder not in (".", "..")):  # fmt: skip
                raise self.fail(f"{name}.subfolder", f"expected a folder name such as transformer_2, got "
                                                     f"{show(subfolder)}")  # fmt: skip
            if revision is not None and not isinstance(revision, (str, int)):
                raise self.fail(f"{name}.revision", f"expected a branch, tag or commit, got {show(revision)}")
            file = None if file is None else str(Path(file).expanduser().absolute())
            return ModelRef(value["id"].strip(), None if revision is None else str(revision), subfolder, file)
        raise self.fail(name, f"expected a hub id, a local directory or {{id, revision, subfolder}}, got {show(value)}")

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
                raise self.fail(f"models.{str(name)[:20]}", "a model is named by one capital letter (L, S, M, ...) "
                                                            f"or by {', '.join(MODEL_ALIASES)}")  # fmt: skip
            if letter in models:
                raise self.fail(f"models.{name}", f"model letter {letter} is declared twice")
            models[letter] = self.model_ref(f"models.{name}", ref)
        return models

    def schedule(self, models: Mapping[str, ModelRef]) -> str:
        default = "LSL" if {"L", "S"} <= set(models) else next(iter(models)) * 3
        value = self.raw.get("schedule", default) or default
        if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{1,64}", value.strip()):
            raise self.fail("schedule", f"expected capital letters such as LSL, LLL or SSS, got {show(value)}")
        value = value.strip()
        missing = sorted(set(value) - set(models))
        if missing:
            raise self.fail("schedule", f"letter(s) {', '.join(missing)} of {value} name no model; "
                                        f"declared under models: {', '.join(models)}")  # fmt: skip
        return value

    def boundaries(self, schedule: str, steps: int) -> tuple[tuple[float, ...], str]:
        needed = len(schedule) - 1
        value = self.raw.get("boundaries")
        if value is None or (value == [] and needed):
            if needed == 0:
                return (), self.choice("boundary_unit", BOUNDARY_UNITS, "fraction")
            if needed == 2:
                value = list(PAPER_BOUNDARIES)
            else:
                example = [round((i + 1) / len(schedule), 2) for i in range(needed)]
                raise self.fail("boundaries", f"schedule {schedule} needs {needed} boundaries, e.g. {example}")
        if not isinstance(value, (list, tuple)) or len(value) != needed:
            raise self.fail("boundaries", f"schedule {schedule} has {len(schedule)} stages and needs a list of "
                                          f"{needed} boundaries, got {show(value)}")  # fmt: skip
        values = [self.number("boundaries", 0.0, value=v, limits={}) for v in value]
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        inferred = "step" if value and ints else "fraction"
        unit = self.choice("boundary_unit", BOUNDARY_UNITS, inferred)
        if unit == "fraction":
            if not all(0 < v < 1 for v in values) or values != sorted(values):
                raise self.fail("boundaries", f"fractions must lie in (0, 1) and not decrease, got {show(value)}")
        elif unit == "step":
            if not all(float(v).is_integer() and 0 < v < steps for v in values) or values != sorted(values):
                raise self.fail("boundaries", f"step indices must be integers in 1..{steps - 1} that do not "
                                              f"decrease, got {show(value)}")  # fmt: skip
        elif not all(0 < v < 1 for v in values) or values != sorted(values, reverse=True):
            raise self.fail("boundaries", f"sigma thresholds must lie in (0, 1) and not increase (noise falls "
                                          f"over the trajectory), got {show(value)}")  # fmt: skip
        return tuple(values), unit

    def letters(self, key: str, value: Mapping[Any, Any], models: Mapping[str, ModelRef]
                ) -> Iterator[tuple[str, str, Any]]:  # fmt: skip
        """A per-model map's entries as (letter, the name errors use, value): `large`/`small`/`medium` mean L/S/M,
        and a name that is no declared model is refused."""
        for name, item in value.items():
            letter = MODEL_ALIASES.get(str(name).lower(), str(name))
            where = f"{key}.{str(name)[:20]}"
            if letter not in models:
                raise self.fail(where, f"names no model; models are {', '.join(models)}")
            yield letter, where, item

    def guidance(self, models: Mapping[str, ModelRef]) -> dict[str, float]:
        value = self.raw.get("guidance_scale", 5.0)
        if isinstance(value, dict):
            scales = {letter: self.number(where, 0.0, value=v)
                      for letter, where, v in self.letters("guidance_scale", value, models)}  # fmt: skip
            missing = sorted(set(models) - set(scales))
            if missing:
                raise self.fail("guidance_scale", f"no scale for model(s) {', '.join(missing)}")
            return scales
        return dict.fromkeys(models, self.number("guidance_scale", 5.0))

    def prompts(self) -> tuple[str, ...]:
        if self.raw.get("prompt") is not None and self.raw.get("prompts"):
            raise self.fail("prompts", "give either 'prompt' (one) or 'prompts' (a list), not both")
        if self.raw.get("prompts"):
            value = self.raw["prompts"]
            if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) and p.strip() for p in value):
                raise self.fail("prompts", "expected a non-empty list of non-empty strings")
            return tuple(p.strip() for p in value)
        value = self.raw.get("prompt")
        if not isinstance(value, str) or not value.strip():
            raise self.fail("prompt", f"expected a non-empty string (or 'prompts:' with a list), got {show(value)}")
        return (value.strip(),)

    def device(self) -> str:
        value = self.raw.get("device", "auto")
        if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d{1,3})?", value):
            raise self.fail("device", f"must be auto, cpu, cuda or cuda:N; got {show(value)}")
        return value

    def cache(self, models: Mapping[str, ModelRef], family: FamilySpec) -> dict[str, dict[str, Any]]:
        """`{type: first_block, threshold: 0.05}` for every model, or per model: `{L: {...}, S: none}`."""
        value, kinds = self.raw.get("cache"), family.caches
        if value in (None, "none", False):
            return {}
        if not isinstance(value, dict):
            raise self.fail("cache", f"expected {{type: {'|'.join(kinds)}, ...}} or one such per model")
        per_model = value if "type" not in value else {m: value for m in models}
        out = {}
        for letter, name, spec in self.letters("cache", per_model, models):
            name = name if "type" not in value else "cache"
            if spec in (None, "none", False):
                continue
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind not in kinds:
                raise self.fail(name, f"type must be one of {', '.join(kinds)} (family {family.name}); "
                                      f"got {show(kind)}")  # fmt: skip
            valid = CACHES[kind][1]
            extra = set(spec) - {"type", *valid}
            if extra:
                raise self.fail(name, f"unknown setting(s) {show(sorted(map(str, extra)))} for {kind}; valid: "
                                      f"{', '.join(valid)}")  # fmt: skip
            for setting, v in spec.items():
                if setting != "type" and v is not None:
                    self.number(f"{name}.{setting}", 0.0, value=v, limits={})
            try:
                cache_hook(spec, family)
            except (TypeError, ValueError) as e:
                raise self.fail(name, f"{kind}: {str(e).splitlines()[0][:120]}") from None
            out[letter] = dict(spec)
        return out

    def lora(self, models: Mapping[str, ModelRef]) -> dict[str, dict[str, Any]]:
        """Per model: `{S: path}` or `{S: {path: ..., scale: 1.0, weight_name: ..., fuse: false}}` (safetensors
        only); `fuse` merges the LoRA into the weights at load, so sampling pays nothing for it."""
        value = self.raw.get("lora")
        if value in (None, "none", False, {}):
            return {}
        if not isinstance(value, dict):
            raise self.fail("lora", "expected a LoRA per model letter, e.g. {S: path/to/lora.safetensors}")
        out = {}
        for letter, name, spec in self.letters("lora", value, models):
            spec = {"path": spec} if isinstance(spec, str) else spec
            if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec["path"].strip():
                raise self.fail(name, "expected a path (file, directory or hub id) or {path, scale, weight_name, fuse}")
            extra = set(spec) - {"path", "scale", "weight_name", "fuse"}
            if extra:
                raise self.fail(name, f"unknown field(s) {show(sorted(map(str, extra)))}; valid: path, scale, "
                                      "weight_name, fuse")  # fmt: skip
            scale = self.number(f"{name}.scale", 1.0, value=spec.get("scale", 1.0), limits={})
            fuse = spec.get("fuse", False)
            if not isinstance(fuse, bool):
                raise self.fail(f"{name}.fuse", f"expected true or false, got {show(fuse)}")
            weight = spec.get("weight_name")
            if weight is not None and (not isinstance(weight, str) or "/" in weight or weight.startswith(".")
                                       or not weight.endswith(".safetensors")):  # fmt: skip
                raise self.fail(f"{name}.weight_name", f"expected a .safetensors file name, got {show(weight)}")
            out[letter] = {"path": spec["path"], "scale": scale, "weight_name": weight, "fuse": fuse}
        return out

    def quantization(self, models: Mapping[str, ModelRef]) -> dict[str, str]:
        """torchao weight quantization: one name for every model (a GGUF `file:` model keeps its own), or per
        letter; `none` leaves a model as it is."""
        value = self.raw.get("quantization")
        if value in (None, "none", {}):
            return {}
        allowed = ("none", "auto", *QUANTIZATIONS)  # auto: only if `offload`'s plan needs it to fit
        if isinstance(value, str):
            value = {m: value for m, ref in models.items() if ref.file is None}
        if not isinstance(value, dict):
            raise self.fail("quantization", f"expected one of {', '.join(allowed)} or a map per model letter")
        out = {}
        for letter, name, kind in self.letters("quantization", value, models):
            if kind not in allowed:
                raise self.fail(name, f"must be one of {', '.join(allowed)}; got {show(kind)}")
            if kind != "none" and models[letter].file:
                raise self.fail(name, f"model {letter} is a GGUF file, quantized already; use none")
            if kind != "none":
                out[letter] = kind
        return out

    def memory_budget(self) -> int | None:
        """Bytes: a number, or text such as 24GiB, 16GB, 80000MiB."""
        value = self.raw.get("memory_budget")
        if value is None:
            return None
        units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
                 "gib": 2**30, "tib": 2**40}  # fmt: skip
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value)) if not isinstance(
            value, bool) else None  # fmt: skip
        if not match or match.group(2).lower() not in units or float(match.group(1)) <= 0:
            raise self.fail("memory_budget", f"expected a size such as 24GiB, 16GB or a byte count, got {show(value)}")
        return int(float(match.group(1)) * units[match.group(2).lower()])

    def attention_backend(self) -> str | None:
        """A backend of diffusers' attention dispatcher; hub-kernel backends are refused (nothing is downloaded).
        Whether its package is installed is checked by the preflight, before any weights load."""
        value = self.raw.get("attention_backend")
        if value is None:
            return None
        from diffusers.models.attention_dispatch import AttentionBackendName

        allowed = tuple(b.value for b in AttentionBackendName if "hub" not in b.value)
        return self.choice("attention_backend", allowed, "native")

    def output_dir(self) -> str:
        value = self.string("output_dir", "outputs")
        if not value.strip() or "\0" in value:
            raise self.fail("output_dir", f"expected a directory path, got {show(value)}")
        return str(Path(value).expanduser().absolute())

    def filename(self) -> str:
        value = self.string("filename", "{slug}-{id}-{seed}-{schedule}")
        problem = filename_problem(value)
        if problem:
            raise self.fail("filename", f"{problem}; a file name template without '/', using only "
                                        f"{{{'}, {'.join(FILENAME_FIELDS)}}}; got {show(value)}")  # fmt: skip
        return value

    def outputs(self) -> tuple[str, ...]:
        value = self.raw.get("outputs", ["mp4"])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, (list, tuple)) or not value or not all(v in OUTPUT_FORMATS for v in value):
            raise self.fail("outputs", f"a list of {', '.join(OUTPUT_FORMATS)} (at least one), got {show(value)}")
        return tuple(dict.fromkeys(value))


def filename_problem(template: str) -> str | None:
    """Why a `filename` template cannot name files, or None: fields and format specs are tried with sample values."""
    if not template.strip() or "/" in template or "\\" in template or template.startswith(".") or "\0" in template:
        return "not a plain file name"
    try:
        parsed = list(string.Formatter().parse(template))
        unknown = {name for _, name, _, _ in parsed if name is not None} - set(FILENAME_FIELDS)
        if unknown:
            return f"unknown field(s) {show(sorted(unknown))}"
        name = template.format(**FILENAME_FIELDS)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return f"not a valid template ({str(e)[:80]})"
    if "/" in name or not name.strip() or len(name) > 200:
        return "formats to no usable file name"
    return None
