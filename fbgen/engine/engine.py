"""One job, top to bottom: config → plan → load once → encode → for each prompt: noise → staged loop → decode →
MP4 → manifest. This is the library API the CLI wraps:

    from fbgen.config.schema import load_config
    from fbgen.engine.engine import Session
    session = Session.open(load_config("configs/wan-14b-1.3b-lsl.yaml"))
    records = session.run()
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch

import fbgen
from fbgen.config.schema import RunConfig, cache_hook
from fbgen.core import interrupts
from fbgen.core.errors import BadInput, FbgenError, ModelError
from fbgen.core.flops import executed_flops, plan_flops
from fbgen.core.sampler import guided, sample
from fbgen.core.schedule import Plan
from fbgen.core.solvers import plan_run
from fbgen.engine.residency import Residency
from fbgen.engine.sources import Source, file_sha256, parameter_count, read_config, resolve
from fbgen.engine.work import WorkTally, tally_work
from fbgen.families import FAMILIES, load_adapter
from fbgen.outputs.manifest import environment, now, write_json
from fbgen.outputs.naming import content_id, output_name, unique_ids
from fbgen.outputs.video import upscale, write_mp4


class Progress(Protocol):
    """What the runner reports; the CLI renders it as Rich progress or plain log lines."""

    def phase(self, message: str) -> None: ...
    def item_start(self, index: int, total: int, name: str, plan: Plan) -> None: ...
    def step(self, index: int, model: str) -> None: ...
    def item_end(self, record: dict[str, Any]) -> None: ...


class NoProgress:
    def phase(self, message: str) -> None:
        pass

    def item_start(self, index: int, total: int, name: str, plan: Plan) -> None:
        pass

    def step(self, index: int, model: str) -> None:
        pass

    def item_end(self, record: dict[str, Any]) -> None:
        pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


@dataclass
class Sources:
    """Every model source a run uses, resolved, with the transformer configs read (no weights yet)."""

    transformers: dict[str, Source]  # the models the schedule uses
    text: Source
    vae: Source
    configs: dict[str, dict]  # transformer configs of every declared model that can be found (for large-only FLOPs)
    vae_config: dict

    @classmethod
    def open(cls, config: RunConfig, weights: bool = True) -> Sources:
        """Resolve sources and refuse a pair that cannot share one latent space, before any weights load."""
        adapter = load_adapter(config.family)
        used = sorted(set(config.schedule), key=list(config.models).index)
        large = config.models[config.large]
        text_ref, vae_ref = config.text_encoder or large, config.vae or large
        wanted: dict[Any, list[str]] = {}
        for letter in used:
            wanted.setdefault(config.models[letter], []).append(adapter.TRANSFORMER)
        wanted.setdefault(text_ref, []).extend(adapter.TEXT_SUBFOLDERS)
        wanted.setdefault(vae_ref, []).extend(adapter.VAE_SUBFOLDERS)
        resolved = {}
        for ref, subfolders in wanted.items():
            names = [letter for letter in used if config.models[letter] == ref] or ["text encoder/VAE"]
            what = f"{config.source}: models.{'/'.join(names)}"
            resolved[ref] = resolve(ref, sorted(set(subfolders)), what, weights=weights)
        transformers = {letter: resolved[config.models[letter]] for letter in used}
        configs = {letter: read_config(src, adapter.TRANSFORMER) for letter, src in transformers.items()}
        for letter in set(config.models) - set(used):  # e.g. L of an SSS run: its config prices "large-only"
            try:
                src = resolve(config.models[letter], [adapter.TRANSFORMER], f"models.{letter}", weights=False)
                configs[letter] = read_config(src, adapter.TRANSFORMER)
            except ModelError:
                pass  # not needed to run; FLOPs then compare against the largest model used
        check_pair(configs, adapter.PAIR_KEYS, {letter: config.models[letter].id for letter in configs})
        vae_config = read_config(resolved[vae_ref], "vae")
        check_vaes(config, used, vae_ref, vae_config, adapter.VAE_KEYS)
        return cls(transformers, resolved[text_ref], resolved[vae_ref], configs, vae_config)


def check_vaes(config: RunConfig, used: list[str], vae_ref: Any, vae_config: dict, keys: tuple[str, ...]) -> None:
    """A model that ships its own VAE must ship the shared one: its latents are decoded by it (e.g. LTX 0.9.1 vs
    0.9.5+ VAEs differ). Only config.json files are read; a model without a findable VAE config is not judged."""
    for letter in used:
        ref = config.models[letter]
        if ref == vae_ref:
            continue
        try:
            own = read_config(resolve(ref, ["vae"], f"models.{letter}", weights=False), "vae")
        except ModelError:
            continue
        for key in keys:
            if own.get(key) != vae_config.get(key):
                raise ModelError(f"models.{letter} ({ref.id}) was trained with another VAE than the shared one "
                                 f"({vae_ref.id}): vae {key} is {own.get(key)} vs {vae_config.get(key)}")  # fmt: skip


def check_pair(configs: dict[str, dict], keys: tuple[str, ...], ids: dict[str, str]) -> None:
    """Models of one run must agree on everything that defines the latent space and the conditioning."""
    first = next(iter(configs))
    for letter, cfg in configs.items():
        for key in keys:
            a, b = configs[first].get(key), cfg.get(key)
            if a != b:
                raise ModelError(
                    f"models {first} ({ids[first]}) and {letter} ({ids[letter]}) cannot share a latent space: "
                    f"{key} is {a} vs {b}"
                )


def plan_flops_for(config: RunConfig, plan: Plan, sources: Sources) -> dict[str, Any]:
    """Analytic FLOPs of the run, from the transformer and VAE configs alone."""
    adapter, shape = _adapter_and_latent(config, sources)
    per_forward = {m: adapter.forward_flops(cfg, shape) for m, cfg in sources.configs.items()}
    return plan_flops(plan, per_forward, config.guidance_scale)


def _adapter_and_latent(config: RunConfig, sources: Sources) -> tuple[Any, tuple[int, int, int]]:
    adapter = load_adapter(config.family)
    return adapter, adapter.latent_shape_from_vae(sources.vae_config, config.height, config.width, config.num_frames)


def memory_plan(config: RunConfig, plan: Plan, sources: Sources) -> dict[str, Any]:
    """Transformer weight bytes on the GPU at peak for the offload mode, from safetensors headers alone
    (activations, text encoder and VAE not included)."""
    itemsize = resolve_dtype(config.dtype, resolve_device(config.device)).itemsize
    offload = config.offload
    params = {m: parameter_count(src, "transformer") for m, src in sources.transformers.items()}
    sizes = {m: None if p is None else p * itemsize for m, p in params.items()}
    lines = [
        f"model {m}: {'weights not available locally' if b is None else f'{params[m]:,} params, {b / 2**30:.3f} GiB'}"
        for m, b in sizes.items()
    ]  # fmt: skip
    resident = None
    if all(b is not None for b in sizes.values()):
        if offload == "none":
            resident = sum(sizes.values())
        elif offload == "idle":
            stages = plan.stages
            pairs = [sizes[a.model] + sizes[b.model] for a, b in zip(stages, stages[1:])]
            resident = max(pairs or [sizes[stages[0].model]])
        lines.append(
            f"offload {offload}: transformer weights on the GPU at peak ≈ "
            + (f"{resident / 2**30:.3f} GiB" if resident is not None else "one block group at a time")
        )
    return {"weights_bytes": sizes, "resident_weights_bytes": resident, "lines": lines}


@dataclass
class Session:
    """Components loaded once for a config; `generate` makes one video, `run` all of the config's prompts."""

    config: RunConfig
    sources: Sources
    family: Any
    residency: Residency
    device: torch.device
    dtype: torch.dtype
    load_s: float
    progress: Progress = field(default_factory=NoProgress)
    lora_pins: dict[str, dict[str, Any]] = field(default_factory=dict)  # applied LoRAs with their sha256, once
    work: dict[str, WorkTally] = field(default_factory=dict)  # what models with a cache hook really computed

    @classmethod
    def open(cls, config: RunConfig, progress: Progress | None = None) -> Session:
        start = time.perf_counter()
        progress = progress or NoProgress()
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
        sources = Sources.open(config)  # missing or mismatched models fail here, before anything is written
        prepare_output_dir(config)
        progress.phase(f"loading {', '.join(f'{m}={s.id}' for m, s in sources.transformers.items())} on {device} "
                       f"({str(dtype).removeprefix('torch.')}, offload {config.offload})")  # fmt: skip
        adapter = load_adapter(config.family)
        try:
            family = adapter.Family.load(sources.transformers, sources.text, sources.vae, str(device), dtype)
        except (OSError, ValueError, RuntimeError) as e:  # missing/corrupt weights, shape mismatches
            raise ModelError(f"{config.source}: cannot load models: {str(e).splitlines()[0]}") from e
        pins = load_loras(family, config)
        work = accelerate(family.transformers, config)
        residency = Residency(family.transformers, config.offload, device)
        sync(device)
        return cls(config, sources, family, residency, device, dtype, time.perf_counter() - start, progress, pins,
                   work)  # fmt: skip

    def run(self) -> list[dict[str, Any]]:
        """Every prompt of the config, encoded up front (then the text encoder is freed), one video each."""
        config = self.config
        start = time.perf_counter()
        self.progress.phase(f"encoding {len(config.prompts)} prompt(s); the text encoder is freed afterwards")
        encoded = self.family.encode(list(config.prompts), config.negative_prompt, uses_cfg(config))
        encode_s = (time.perf_counter() - start) / len(config.prompts)
        return [
            self.generate(config, prompt, cond, config.seed, index, len(config.prompts), encode_s=encode_s, name=name)
            for index, (prompt, cond, name) in enumerate(zip(config.prompts, encoded, prompt_names(config)))
        ]

    def denoise(self, config: RunConfig, plan: Plan, scheduler: Any, cond: Any, seed: int
                ) -> tuple[torch.Tensor, list[float]]:  # fmt: skip
        """The staged loop alone: seeded noise → final latents, and the wall time of each stage of the plan."""
        self.family.configure(config)
        latents = self.family.initial_latents(seed, config.height, config.width, config.num_frames)
        denoisers = {
            m: guided(partial(self.family.predict, m, cond), config.guidance_scale[m]) for m in set(plan.models)
        }
        clock = _StageClock(plan, self.device, self.progress.step)
        place = self.residency.hook(plan.models)
        for tally in self.work.values():
            tally.reset()

        def before_step(i: int, model: str) -> None:
            place(i, model)
            if config.cache.get(model) and (i == 0 or plan.models[i - 1] != model):
                reset_cache(self.family.transformers[model])
            clock.before(i)

        latents = sample(scheduler, plan.models, denoisers, latents, before_step, clock.after)
        self.residency.finish()
        return latents, clock.wall

    def executed(self, config: RunConfig, flops: dict[str, Any]) -> dict[str, Any]:
        """The FLOPs the last denoise really ran: the plan's, less the block work cache hooks skipped."""
        adapter, shape = _adapter_and_latent(config, self.sources)
        configs = self.sources.configs
        skipped = {m: work.skipped_flops(adapter.block_flops(configs[m], shape)) for m, work in self.work.items()}
        return executed_flops(flops, skipped)

    def generate(self, config: RunConfig, prompt: str, cond: Any, seed: int, index: int = 0, total: int = 1,
                 encode_s: float = 0.0, name: str | None = None) -> dict[str, Any]:  # fmt: skip
        """One video: noise from `seed`, the staged loop over the plan, decode, MP4, manifest. Returns the record."""
        interrupts.check()  # a signal some library swallowed while loading stops here, before any work
        t_start = time.perf_counter()
        scheduler, plan = plan_run(config, str(self.device))
        flops = plan_flops_for(config, plan, self.sources)
        name = name or output_name(config.filename, prompt=prompt, seed=seed, schedule=plan.tag(),
                                   steps=config.steps, index=index, id=content_id(prompt))  # fmt: skip
        out_dir = Path(config.output_dir)
        mp4, manifest = out_dir / f"{name}.mp4", out_dir / f"{name}.json"
        self.progress.item_start(index, total, name, plan)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

        t0 = time.perf_counter()
        latents, stage_wall = self.denoise(config, plan, scheduler, cond, seed)
        if not torch.isfinite(latents).all():
            raise FbgenError(f"{name}: NaN or inf in the latents after denoising (try dtype: float32 or bfloat16)")
        t1 = time.perf_counter()
        flops |= self.executed(config, flops)
        frames = self.family.decode(latents)
        sync(self.device)
        t2 = time.perf_counter()
        out_dir.mkdir(parents=True, exist_ok=True)
        scale = FAMILIES[config.family].view_scale
        write_mp4(upscale(frames, scale), mp4, config.fps)
        t3 = time.perf_counter()

        stages = [
            {"model": s.model, "start": s.start, "end": s.end, "flops": sum(flops["per_step"][s.start:s.end]),
             "wall_s": stage_wall[k]}
            for k, s in enumerate(plan.stages)
        ]  # fmt: skip
        record = {
            "fbgen_version": fbgen.__version__,
            "created": now(),
            "status": "done",
            "name": name,
            "prompt": prompt,
            "negative_prompt": config.negative_prompt,
            "seed": seed,
            "generator_device": "cpu",
            "family": config.family,
            "models": {m: {**src.pin(), "used": m in plan.models} for m, src in self.sources.transformers.items()},
            "text_encoder": self.sources.text.pin(),
            "vae": self.sources.vae.pin(),
            "schedule": config.schedule,
            "boundaries": list(config.boundaries),
            "boundary_unit": config.boundary_unit,
            "steps": config.steps,
            "solver": config.solver,
            "shift": config.shift,
            "guidance_scale": config.guidance_scale,
            "plan": [
                {"step": i, "model": m, "timestep": t, "sigma": s}
                for i, (m, t, s) in enumerate(zip(plan.models, plan.timesteps, plan.sigmas))
            ],
            "height": config.height,
            "width": config.width,
            "num_frames": config.num_frames,
            "fps": config.fps,
            "view_scale": scale,
            "output": str(mp4),
            "sha256": file_sha256(mp4),
            "stages": stages,
            "flops": {k: v for k, v in flops.items() if k != "per_step"},
            "wall_s": {
                "load": self.load_s,
                "encode": encode_s,
                "denoise": t1 - t0,
                "decode": t2 - t1,
                "write": t3 - t2,
                "total": time.perf_counter() - t_start + encode_s,
            },
            "peak_memory_bytes": _peak_memory(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "offload": config.offload,
            "compile": config.compile,
            "lora": self.lora_pins,
            **environment(self.device),
            "config": config.to_dict(),
        }
        write_json(manifest, record)
        self.progress.item_end(record)
        return record


def prompt_names(config: RunConfig) -> list[str]:
    """The output names of a config's prompts (ids as a .txt batch gives them); two prompts that would share a name
    under the `filename` template are refused before anything loads."""
    tag = plan_run(config)[1].tag()
    names: dict[str, int] = {}
    for index, (prompt, item_id) in enumerate(zip(config.prompts, unique_ids([content_id(p) for p in config.prompts]))):
        name = output_name(config.filename, prompt=prompt, seed=config.seed, schedule=tag, steps=config.steps,
                           index=index, id=item_id)  # fmt: skip
        if name in names:
            raise BadInput(f"{config.source}: key 'filename': {config.filename!r} gives prompts {names[name] + 1} and "
                           f"{index + 1} the same output name {name!r}; include {{id}} in it")  # fmt: skip
        names[name] = index
    return list(names)


def accelerate(models: Mapping[str, Any], config: RunConfig) -> dict[str, WorkTally]:
    """The config's accelerations, applied the way diffusers documents them, to the transformers of the run:
    attention backend and regional compile for all, a cache hook per model (each model keeps its own state).
    Returns a tally of the work each model with a cache hook really computes."""
    cached = {m: model for m, model in models.items() if config.cache.get(m)}
    work = tally_work(cached, FAMILIES[config.family].block_units)  # before the hooks: innermost, counts past them
    for letter, model in models.items():
        if config.attention_backend:
            try:
                model.set_attention_backend(config.attention_backend)
            except (ImportError, RuntimeError, ValueError) as e:
                raise BadInput(f"{config.source}: key 'attention_backend': {str(e).splitlines()[0]}") from None
        if config.cache.get(letter):
            try:
                model.enable_cache(cache_hook(config.cache[letter], FAMILIES[config.family]))
            except (IndexError, ValueError) as e:  # e.g. first_block on a model with a single block
                kind = config.cache[letter]["type"]
                raise ModelError(f"{config.source}: cache {kind} cannot run on model {letter} ({type(e).__name__}: "
                                 f"{e}); choose another hook or none for {letter}") from None  # fmt: skip
        if config.compile:
            # a cache hook wraps the block forwards in code dynamo cannot trace whole: graph breaks there, not a crash
            model.compile_repeated_blocks(fullgraph=not config.cache.get(letter))
    return work


def load_loras(family: Any, config: RunConfig) -> dict[str, dict[str, Any]]:
    """A LoRA per model, through the family pipeline's own LoRA loader (format conversion included), into that
    model alone; safetensors only; fused into the weights when asked (no per-step cost, as diffusers' `fuse_lora`
    then `unload_lora_weights`). Returns what was applied, pinned by sha256 for the manifest."""
    loader = type(family.pipe)
    pins = {}
    for letter, spec in config.lora.items():
        model = family.transformers.get(letter)
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


def prepare_output_dir(config: RunConfig) -> Path:
    """Create the output directory and prove it takes files, before any model loads (exit 2, not a lost render)."""
    path = Path(config.output_dir)
    probe = path / f".fbgen-write-test.{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise BadInput(f"{config.source}: key 'output_dir': {path} is not writable ({e.strerror or e})") from None
    return path


def uses_cfg(config: RunConfig) -> bool:
    return any(config.guidance_scale[m] > 1.0 for m in set(config.schedule))


class _StageClock:
    """Wall time per stage; synchronises only at stage boundaries so it does not stall the GPU every step."""

    def __init__(self, plan: Plan, device: torch.device, on_step: Callable[[int, str], None]):
        self.starts = {s.start: k for k, s in enumerate(plan.stages)}
        self.ends = {s.end - 1: k for k, s in enumerate(plan.stages)}
        self.wall = [0.0] * len(plan.stages)
        self.device, self.on_step, self.t = device, on_step, 0.0

    def before(self, i: int) -> None:
        if i in self.starts:
            sync(self.device)
            self.t = time.perf_counter()

    def after(self, i: int, model: str, latents: torch.Tensor) -> None:
        if i in self.ends:
            sync(self.device)
            self.wall[self.ends[i]] = time.perf_counter() - self.t
        self.on_step(i, model)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory(device: torch.device) -> dict[str, int | None]:
    if device.type != "cuda":
        return {"allocated": None, "reserved": None}
    return {"allocated": torch.cuda.max_memory_allocated(device), "reserved": torch.cuda.max_memory_reserved(device)}
