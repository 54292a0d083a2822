"""What is applied to the transformers once, when the engine opens: LoRAs and accelerations (attention backend,
cache hooks, regional compile), each the way diffusers documents it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fbgen.config import RunConfig, cache_hook
from fbgen.config.schema import QUANTIZATIONS
from fbgen.core.errors import ModelError
from fbgen.engine.work import WorkTally, tally_work
from fbgen.families import FAMILIES
from fbgen.outputs.checksums import file_sha256


def torchao_config(name: str) -> Any:
    """diffusers' `TorchAoConfig` for one of fbgen's quantization names (`QUANTIZATIONS`)."""
    import torchao.quantization
    from diffusers import TorchAoConfig

    return TorchAoConfig(getattr(torchao.quantization, QUANTIZATIONS[name][0])())


def accelerate(models: Mapping[str, Any], config: RunConfig) -> dict[str, WorkTally]:
    """The config's accelerations on the transformers of the run: attention backend and regional compile for all, a
    cache hook per model (each model keeps its own state). Returns a tally of the work each model with a cache hook
    really computes."""
    family = FAMILIES[config.family]
    cached = {m: model for m, model in models.items() if config.cache.get(m)}
    work = tally_work(cached, family.block_units)  # before the hooks: innermost, counts past them
    for letter, model in models.items():
        if config.attention_backend:
            try:
                model.set_attention_backend(config.attention_backend)
            except (ImportError, RuntimeError, ValueError) as e:
                raise ModelError(f"{config.source}: key 'attention_backend': {str(e).splitlines()[0]}") from None
        if config.cache.get(letter):
            try:
                model.enable_cache(cache_hook(config.cache[letter], family))
            except (IndexError, ValueError) as e:  # e.g. first_block on a model with a single block
                kind = config.cache[letter]["type"]
                raise ModelError(f"{config.source}: cache {kind} cannot run on model {letter} ({type(e).__name__}: "
                                 f"{e}); choose another hook or none for {letter}") from None  # fmt: skip
        if config.compile:
            # a cache hook wraps the block forwards in code dynamo cannot trace whole: graph breaks there, not a crash
            model.compile_repeated_blocks(fullgraph=not config.cache.get(letter))
    return work


def load_loras(models: Mapping[str, Any], loader: Any, config: RunConfig) -> dict[str, dict[str, Any]]:
    """A LoRA per model, through the family pipeline's own LoRA loader (format conversion included), into that
    model alone; safetensors only; fused into the weights when asked (no per-step cost, as diffusers' `fuse_lora`
    then `unload_lora_weights`). Returns what was applied, pinned by sha256 for the manifest."""
    pins = {}
    for letter, spec in config.lora.items():
        model = models.get(letter)
        if model is None:
            continue  # declared but unused by this schedule
        path = Path(spec["path"]).expanduser()
        source, weight_name = (str(path.parent), path.name) if path.is_file() else (spec["path"], spec["weight_name"])
        try:
            state_dict, metadata = loader.lora_state_dict(source, weight_name=weight_name, use_safetensors=True,
                                                          allow_pickle=False, return_lora_metadata=True)  # fmt: skip
            name = f"fbgen_{letter}"
            loader.load_lora_into_transformer(state_dict, transformer=model, adapter_name=name, metadata=metadata)
            model.set_adapters([name], [spec["scale"]])
            if spec.get("fuse"):  # merge the scaled update into the weights, then drop the LoRA layers
                model.fuse_lora(adapter_names=[name])
                model.unload_lora()
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise ModelError(f"{config.source}: lora.{letter}: cannot load {spec['path']} "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None  # fmt: skip
        pins[letter] = {**spec, "sha256": _lora_sha256(spec["path"])}
    return pins


def _lora_sha256(path: str) -> str | None:
    """The LoRA file that was applied (a local file, or the safetensors of a local directory); None for hub ids."""
    p = Path(path).expanduser()
    files = [p] if p.is_file() else sorted(p.glob("*.safetensors")) if p.is_dir() else []
    return file_sha256(files[0]) if len(files) == 1 else None


def reset_cache(model: Any) -> None:
    """A cache hook's state belongs to one stretch of one model's trajectory: reset it when a stage starts, as
    diffusers' pipelines do after each call."""
    if hasattr(model, "_reset_stateful_cache"):
        model._reset_stateful_cache()
