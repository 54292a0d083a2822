"""The memory plan: GPU bytes at the peak of each phase of a run (prompt encoding, denoising, VAE decode) and host
RAM, for every residency, from configs alone (`fbgen plan` loads no weights); and the choice `offload: auto` makes.

Weights are counted tensor by tensor — from safetensors headers, or from the config on the meta device when only
configs are at hand — at the run's dtype, or at the quantized size: torchao quantizes 2-D `weight` tensors (a
per-row scale added), a GGUF file weighs what the file weighs. Activations and the decode are the family's
estimates (`FamilySpec.activation_bytes`, `decode_bytes`), stated as such.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from fbgen.config import RunConfig
from fbgen.config.schema import QUANTIZATIONS
from fbgen.core.errors import BadInput
from fbgen.core.jsonfile import read_json_object
from fbgen.core.schedule import Plan
from fbgen.engine.sources import Source, Sources
from fbgen.families.base import component_class

MODES = ("none", "idle", "group")  # fastest first: what `auto` tries in order
BLOCK = re.compile(r"(?:^|\.)(?:blocks|transformer_blocks)\.(\d+)\.")
GiB = 2**30


@functools.lru_cache(maxsize=64)  # `auto` plans several candidates; a checkpoint's shapes do not change
def tensor_shapes(source: Source, subfolder: str, cls: type) -> dict[str, tuple[int, ...]]:
    """Every weight's shape: from the safetensors headers (no tensor is read), else built from the config on the
    meta device (an offline plan from shipped configs)."""
    files = sorted((source.path / subfolder).glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        shapes = {}
        for file in files:
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        return shapes
    config = read_json_object(source.path / subfolder / "config.json", f"{source.id}: {subfolder}")
    with torch.device("meta"):
        if hasattr(cls, "from_config"):  # diffusers
            model = cls.from_config(config)
        else:  # transformers
            fields = {k: v for k, v in config.items() if not k.startswith("_")}
            model = cls(cls.config_class(**fields))
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def weight_bytes(shapes: dict[str, tuple[int, ...]], itemsize: int, quantized: float | None = None,
                 fp32: tuple[str, ...] = ()) -> int:  # fmt: skip
    """Bytes of the weights as diffusers loads them: modules the class keeps in float32 (`_keep_in_fp32_modules`)
    at 4 bytes, the other 2-D weights quantized when asked (with a float32 scale per row)."""
    total = 0
    for name, shape in shapes.items():
        if set(name.split(".")) & set(fp32):
            total += math.prod(shape) * 4
        elif quantized is not None and len(shape) == 2 and name.endswith("weight"):
            total += int(math.prod(shape) * quantized) + shape[0] * 4
        else:
            total += math.prod(shape) * itemsize
    return total


def kept_in_fp32(cls: type, itemsize: int) -> tuple[str, ...]:
    """The modules a class keeps in float32 when loaded at a lower precision (diffusers' own rule)."""
    return tuple(getattr(cls, "_keep_in_fp32_modules", None) or ()) if itemsize < 4 else ()


def block_bytes(shapes: dict[str, tuple[int, ...]], itemsize: int, quantized: float | None,
                fp32: tuple[str, ...] = ()) -> tuple[int, int]:  # fmt: skip
    """(bytes outside the repeated blocks, bytes of the largest block): what group offloading keeps resident."""
    blocks: dict[str, dict[str, tuple[int, ...]]] = {}
    rest = {}
    for name, shape in shapes.items():
        match = BLOCK.search(name)
        (blocks.setdefault(match.group(1), {}) if match else rest)[name] = shape
    largest = max((weight_bytes(b, itemsize, quantized, fp32) for b in blocks.values()), default=0)
    return weight_bytes(rest, itemsize, quantized, fp32), largest


@dataclass
class MemoryPlan:
    """Bytes per model and component, the GPU peak of each phase per residency, host RAM, and the lines to show."""

    weights: dict[str, int]  # transformer letter → bytes (quantized where asked)
    text_encoder: int
    vae: int
    activations: int  # the largest model's forward at this size
    decode: dict[str, int]  # "plain" / "tiled" VAE decode beyond its weights
    peaks: dict[str, dict[str, int]]  # mode → phase → GPU bytes
    host: dict[str, int]  # mode → host RAM bytes
    pairs: dict[str, str] = field(default_factory=dict)  # mode → what makes its denoise peak

    def peak(self, mode: str, tiled: bool = False) -> int:
        phases = dict(self.peaks[mode])
        if tiled:
            phases["decode"] += self.decode["tiled"] - self.decode["plain"]
        return max(phases.values())

    def lines(self, offload: str) -> list[str]:
        out = [f"model {m}: {b / GiB:.2f} GiB of weights" for m, b in self.weights.items()]
        out.append(f"text encoder {self.text_encoder / GiB:.2f} GiB, VAE {self.vae / GiB:.2f} GiB; activations "
                   f"(estimate) {self.activations / GiB:.2f} GiB a forward, VAE decode {self.decode['plain'] / GiB:.2f}"
                   f" GiB ({self.decode['tiled'] / GiB:.2f} GiB tiled)")  # fmt: skip
        for mode in MODES if offload == "auto" else (offload,):
            phases = ", ".join(f"{k} {v / GiB:.2f}" for k, v in self.peaks[mode].items())
            out.append(f"offload {mode}: GPU peak ≈ {self.peak(mode) / GiB:.2f} GiB ({phases} GiB"
                       f"{'; ' + self.pairs[mode] if mode in self.pairs else ''}); host RAM ≈ "
                       f"{self.host[mode] / GiB:.2f} GiB")  # fmt: skip
        return out


def memory_plan(config: RunConfig, plan: Plan, sources: Sources, job: Any = None) -> MemoryPlan:
    """The plan for the config's models at `job`'s size (default: the config's)."""
    job = job or config
    family = sources.family
    cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    dtype = config.dtype if config.dtype != "auto" else "bfloat16" if cuda else "float32"
    itemsize = getattr(torch, dtype).itemsize
    weights, blocks = {}, {}
    for m, src in sources.transformers.items():
        quantized = QUANTIZATIONS[config.quantization[m]][1] if m in config.quantization else None
        cls = component_class(family, src.path, sources.subfolders[m], "transformer")
        shapes, fp32 = tensor_shapes(src, sources.subfolders[m], cls), kept_in_fp32(cls, itemsize)
        weights[m] = sources.files[m][0].stat().st_size if m in sources.files else weight_bytes(
            shapes, itemsize, quantized, fp32)  # fmt: skip
        rest, block = block_bytes(shapes, itemsize, quantized, fp32)
        blocks[m] = min(weights[m], rest + 2 * block)  # group offload: the rest, one block and the prefetched next
    text = 0
    if family.text_subfolders:
        text_source = sources.text
        text_cls = component_class(family, text_source.path, "text_encoder")
        text = weight_bytes(tensor_shapes(text_source, "text_encoder", text_cls), itemsize, None,
                            kept_in_fp32(text_cls, itemsize))  # fmt: skip
    vae_cls = component_class(family, sources.vae.path, "vae")
    vae_dtype = family.adapter().vae_dtype  # a family may run its VAE at its own precision (Wan: float32)
    vae_itemsize = vae_dtype.itemsize if vae_dtype is not None else itemsize
    vae = weight_bytes(tensor_shapes(sources.vae, "vae", vae_cls), vae_itemsize)
    shape = family.latent_shape(sources.vae_config, job.height, job.width, job.num_frames)
    used = sorted(set(plan.models))
    activations = max(family.activation_bytes(sources.configs[m], shape, job.max_sequence_length, itemsize)
                      for m in used)  # fmt: skip
    decode = {kind: family.decode_bytes(sources.vae_config, job.height, job.width, job.num_frames, kind == "tiled")
              for kind in ("plain", "tiled")}  # fmt: skip
    stages = plan.stages
    switches = [(weights[a.model] + weights[b.model], f"{a.model}+{b.model} at step {b.start}")
                for a, b in zip(stages, stages[1:])] or [(weights[stages[0].model], stages[0].model)]  # fmt: skip
    idle, where = max(switches, key=lambda pair: pair[0])  # the first switch of the largest pair
    resident = {"none": sum(weights[m] for m in used), "idle": idle, "group": max(blocks[m] for m in used)}
    after = {"none": resident["none"], "idle": weights[plan.models[0]], "group": 0}  # what stays while decoding
    peaks = {mode: {"encode": text + (resident["none"] if mode == "none" else 0),
                    "denoise": resident[mode] + activations,
                    "decode": after[mode] + vae + decode["plain"]} for mode in MODES}  # fmt: skip
    total = sum(weights[m] for m in used)
    host = {"none": text + vae, "idle": total + text + vae, "group": total + text + vae}
    if not cuda:  # everything lives in host RAM
        host = {mode: total + text + vae + activations + decode["plain"] for mode in MODES}
    pairs = {"idle": f"{where}; at most two transformers at once", "group": "one block and the next in flight"}
    return MemoryPlan(weights, text, vae, activations, decode, peaks, host, pairs)


def needs_choice(config: RunConfig) -> bool:
    """Whether `choose` has something to decide: `offload: auto` or a model with `quantization: auto`."""
    return config.offload == "auto" or "auto" in config.quantization.values()


def choose(config: RunConfig, plan: Plan, sources: Sources, budget: int | None) -> tuple[RunConfig, str]:
    """`offload: auto` / `quantization: auto`: the fastest residency — and, for the models that allow it, weight
    quantization — whose planned peak fits `budget` bytes; the config with the choice made, and why.

    Tried in this order (fastest first, as measured on H100s for the pair: whole-model residency beats block
    streaming, and weight-only quantization costs less than streaming blocks): none, idle, none + quantized,
    idle + quantized, group, group + quantized. Quantized means float8 weight-only on GPUs with float8, else int8."""
    modes = MODES if config.offload == "auto" else (config.offload,)
    auto = [m for m, q in config.quantization.items() if q == "auto"]
    fixed = {m: q for m, q in config.quantization.items() if q != "auto"}
    kind = auto_quantization(config) if auto else None
    order = [(m, False) for m in modes if m != "group"] + [(m, True) for m in modes if m != "group"]
    order += [(m, q) for m in modes if m == "group" for q in (False, True)]
    tried = []
    for mode, quantized in order:
        if quantized and kind is None:
            continue
        candidate = replace(config, offload=mode, quantization={**fixed, **dict.fromkeys(auto if quantized else [],
                                                                                          kind)})  # fmt: skip
        what = mode + (f" + {kind}" if quantized else "")
        if budget is None:
            return candidate, f"{what}: no GPU and no memory_budget to plan against"
        memory = memory_plan(candidate, plan, sources)
        peak = memory.peak(mode)
        if peak > budget:  # the engine tiles the VAE when the decode would not fit: plan with that
            peak = memory.peak(mode, tiled=True)
        if peak <= budget:
            earlier = f" ({'; '.join(tried)})" if tried else ""
            return candidate, f"chose {what}: planned peak {peak / GiB:.2f} GiB fits {budget / GiB:.2f} GiB{earlier}"
        tried.append(f"{what} needs {peak / GiB:.2f} GiB")
    raise BadInput(f"{config.source}: key 'offload': nothing fits {budget / GiB:.2f} GiB ({'; '.join(tried)}); "
                   f"quantize the large model (quantization: int8_weight_only or auto), lower the size or frames, or "
                   f"raise memory_budget")  # fmt: skip


def auto_quantization(config: RunConfig) -> str | None:
    """What `quantization: auto` may use here: float8 weights on GPUs that have float8, else int8; None without
    torchao (then auto only chooses the residency)."""
    import importlib.util

    if importlib.util.find_spec("torchao") is None:
        return None
    cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    if cuda and torch.cuda.is_available():
        device = torch.device("cuda" if config.device == "auto" else config.device)
        if torch.cuda.get_device_capability(device) >= (8, 9):
            return "float8_weight_only"
    return "int8_weight_only"


def gpu_budget(config: RunConfig) -> int | None:
    """What `auto` plans against: `memory_budget`, else the GPU's free memory now, else None (no GPU)."""
    if config.memory_budget is not None:
        return config.memory_budget
    cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    if not cuda or not torch.cuda.is_available():
        return None
    device = torch.device("cuda" if config.device == "auto" else config.device)
    return torch.cuda.mem_get_info(device)[0]
