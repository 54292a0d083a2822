"""The run config, declared once: every key with its type, default, range, whether it is fixed when the models load
(`load`) or may vary per video (`job`), and the line the README's config reference shows. Validation
(`fbgen.config.validate`), the per-item and per-variant checks and `fbgen config-reference` all read this.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

OFFLOADS = ("none", "idle", "group", "auto")
DTYPES = ("auto", "bfloat16", "float16", "float32")
BOUNDARY_UNITS = ("fraction", "step", "sigma")
OUTPUT_FORMATS = ("mp4", "png", "latents")
QUANTIZATIONS = {  # fbgen's name → the torchao config class diffusers' TorchAoConfig takes, and bytes per weight
    "int8_weight_only": ("Int8WeightOnlyConfig", 1.0),
    "int8_dynamic": ("Int8DynamicActivationInt8WeightConfig", 1.0),
    "float8_weight_only": ("Float8WeightOnlyConfig", 1.0),
    "float8_dynamic": ("Float8DynamicActivationFloat8WeightConfig", 1.0),
    "int4_weight_only": ("Int4WeightOnlyConfig", 0.5),
}
MODEL_ALIASES = {"large": "L", "small": "S", "medium": "M"}
FILENAME_FIELDS = {"slug": "words", "id": "item-id", "seed": 0, "schedule": "LSL-n50", "steps": 50, "index": 0}
DEFAULT_FILENAME = "{slug}-{id}-{seed}-{schedule}"  # the id makes names unique per item
MAX_SEED = 2**64 - 1  # what torch.Generator.manual_seed accepts
CACHES = {  # diffusers cache hooks fbgen offers (each family says which work for it): config class, settings passed on
    "first_block": ("FirstBlockCacheConfig", ("threshold",)),
    "taylorseer": ("TaylorSeerCacheConfig", ("cache_interval", "disable_cache_before_step", "disable_cache_after_step",
                                             "max_order")),
    "seacache": ("SeaCacheConfig", ("threshold", "residual_order", "retention_steps", "cache_end_steps",
                                    "max_consecutive_cached")),
}  # fmt: skip


def key(phase: str, doc: str, default: Any = None, **limits: Any) -> Any:
    """A config key: `load` keys are fixed when the engine opens; `job` keys may differ per video."""
    return field(default=default, metadata={"phase": phase, "doc": doc, **limits})


@dataclass(frozen=True)
class ModelRef:
    """A model source: a hub id or a local diffusers directory, optionally pinned to a revision, and the subfolder
    that holds the transformer (`transformer_2` for Wan 2.2's low-noise expert)."""

    id: str
    revision: str | None = None
    subfolder: str | None = None
    file: str | None = None  # a GGUF single file of the transformer; `id` (and `subfolder`) supply its config


@dataclass(frozen=True)
class RunConfig:
    """A validated run config. Field order is the README's order; `key(...)` says what each key is."""

    # -- load time: one engine per combination -------------------------------------------------------------------
    family: str = key("load", "model family: wan, ltx or demo", "wan")
    models: dict[str, ModelRef] = key("load", "letter → hub id, local directory or {id, revision, subfolder, file "
                                              "(a .gguf)}; large/small/medium mean L/S/M",
                                      shown="demo: the shipped pair")  # fmt: skip
    text_encoder: ModelRef | None = key("load", "where the text encoder comes from (default: the large model's repo)")
    vae: ModelRef | None = key("load", "where the VAE comes from (default: the large model's repo)")
    dtype: str = key("load", f"weights dtype: {', '.join(DTYPES)} (auto: bfloat16 on CUDA, else float32)", "auto")
    device: str = key("load", "auto, cpu, cuda or cuda:N", "auto")
    offload: str = key("load", f"transformer residency: {', '.join(OFFLOADS)} (auto: the fastest that fits)", "none")
    compile: bool = key("load", "torch.compile the repeated transformer blocks", False)
    quantization: dict[str, str] = key("load", f"torchao weights, for all models or per letter: none, auto (only "
                                               f"if needed to fit), {', '.join(QUANTIZATIONS)} (a GGUF `file:` is "
                                               f"its own)", None,
                                       shown="none")  # fmt: skip
    memory_budget: int | None = key("load", "GPU bytes `offload: auto` may plan for, e.g. 24GiB (default: the "
                                            "GPU's free memory)", None, shown="free memory")  # fmt: skip
    attention_backend: str | None = key("load", "a backend of diffusers' attention dispatcher (e.g. native, "
                                                "flash, sage); hub kernels are refused")  # fmt: skip
    cache: dict[str, dict[str, Any]] = key("load", "diffusers cache hook, for all models or per letter: {type: "
                                                   "first_block, taylorseer or seacache, ...settings}")  # fmt: skip
    lora: dict[str, dict[str, Any]] = key("load", "per letter: a path or {path, scale, weight_name, fuse} "
                                                  "(safetensors only)")  # fmt: skip
    # -- per video: may change per batch item or compare variant -------------------------------------------------
    prompts: tuple[str, ...] = key("job", "`prompt: text` or `prompts: [text, ...]`", ())
    negative_prompt: str = key("job", "negative prompt (used where guidance_scale > 1)", "")
    seed: int = key("job", "seed of the initial noise, 0..2^64-1 (batch items derive theirs from it)", 0,
                    minimum=0, maximum=MAX_SEED)  # fmt: skip
    height: int = key("job", "pixels; the family's multiple (wan 16, ltx 32)", 0, minimum=1, maximum=8192,
                      shown="family's")  # fmt: skip
    width: int = key("job", "pixels; the family's multiple (wan 16, ltx 32)", 0, minimum=1, maximum=8192,
                     shown="family's")  # fmt: skip
    num_frames: int = key("job", "frames; wan 4k+1, ltx 8k+1", 0, minimum=1, maximum=4097, shown="family's")
    fps: int = key("job", "frames per second of the video (LTX also conditions on it)", 0, minimum=1, maximum=240,
              shown="family's")
    schedule: str = key("job", "one letter per stage, e.g. LSL, LLL, SSS, LMSML", "",
                        shown="LSL with L and S, else the one model")
    boundaries: tuple[float, ...] = key("job", "one per stage switch: fractions in (0,1) (default [0.4, 0.8] for "
                                               "LSL), step indices, or sigma thresholds", (),
                                        shown="`[0.4, 0.8]` for 3 stages")  # fmt: skip
    boundary_unit: str = key("job", f"{', '.join(BOUNDARY_UNITS)} (sigma switches as WanPipeline's boundary_ratio)",
                             "fraction")  # fmt: skip
    steps: int = key("job", "denoising steps", 50, minimum=1, maximum=1000)
    solver: str = key("job", "unipc, euler or dpmpp (wan); euler (ltx)", "", shown="family's first")
    shift: float | None = key("job", "flow time shift (wan default 3.0; ltx: dynamic by token count)", None,
                              minimum=0.0, maximum=100.0, exclusive=True)  # fmt: skip
    guidance_scale: dict[str, float] = key("job", "classifier-free guidance, one number or per letter", 5.0,
                                           minimum=0.0, maximum=100.0)  # fmt: skip
    max_sequence_length: int = key("job", "prompt tokens the text encoder sees (wan 512, ltx 128, demo 24)", 0,
                                   minimum=1, maximum=4096, shown="family's")  # fmt: skip
    decode_timestep: float | None = key("job", "ltx only: VAE decode timestep", None, minimum=0.0, maximum=1.0)
    decode_noise_scale: float | None = key("job", "ltx only: decode noise (default: decode_timestep)", None,
                                           minimum=0.0, maximum=1.0)  # fmt: skip
    output_dir: str = key("job", "where videos and manifests go", "outputs")
    filename: str = key("job", "output name template over {" + ", ".join(FILENAME_FIELDS) + "}", DEFAULT_FILENAME)
    outputs: tuple[str, ...] = key("job", f"what to write: any of {', '.join(OUTPUT_FORMATS)}", ("mp4",))
    crf: int = key("job", "H.264 quality, 0 (lossless) .. 51; lower is better", 10, minimum=0, maximum=51)
    source: str = field(default="<config>", compare=False, metadata={"phase": "meta"})
    # read from the checkpoint, not the file: a two-expert checkpoint's `boundary_ratio` (see `experts`), when a
    # schedule of just its two experts left `boundaries` out and took the switch from it
    expert_switch: float | None = field(default=None, metadata={"phase": "meta"})

    @property
    def large(self) -> str:
        """The letter of the large model: `L` when declared, else the first one."""
        return "L" if "L" in self.models else next(iter(self.models))

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (for manifests and `fbgen plan`)."""
        data = asdict(self)
        data.pop("source")
        for name in ("boundaries", "prompts", "outputs"):
            data[name] = list(data[name])
        return data


def experts(models: Mapping[str, ModelRef]) -> tuple[str, str] | None:
    """The letters of a two-expert checkpoint's models (Wan 2.2 A14B) when one repository supplies both:
    (`transformer`, the high-noise expert; `transformer_2`, the low-noise one). None otherwise."""
    by_repo: dict[tuple[str, str | None], dict[str, str]] = {}
    for letter, ref in models.items():
        by_repo.setdefault((ref.id, ref.revision), {}).setdefault(ref.subfolder or "transformer", letter)
    return next(((subs["transformer"], subs["transformer_2"]) for subs in by_repo.values()
                 if {"transformer", "transformer_2"} <= set(subs)), None)  # fmt: skip


def keys(phase: str | None = None) -> tuple[str, ...]:
    """The config's keys (`prompt` and `prompts` are one), optionally only the load-time or the per-job ones."""
    return tuple(f.name for f in fields(RunConfig) if f.metadata["phase"] != "meta"
                 and (phase is None or f.metadata["phase"] == phase))  # fmt: skip


FILE_KEYS = ("prompt", *keys())  # what a YAML file may contain


def reference_markdown() -> str:
    """The README's config reference, generated from the declaration (a test keeps the README in step)."""
    lines = ["| key | when | default | what |", "|---|---|---|---|"]
    for f in fields(RunConfig):
        if f.metadata["phase"] != "meta":
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            shown = f.metadata.get("shown", f"`{json.dumps(default)}`")
            lines.append(f"| `{f.name}` | {f.metadata['phase']} | {shown} | {f.metadata['doc']} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m fbgen.config.schema: the README's config reference
    print(reference_markdown())
