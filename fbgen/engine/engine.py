"""The engine: opened once from the load-time part of a config (models, text encoder, VAE, dtype, device, offload,
LoRA, cache, attention backend, compile), then renders any number of jobs. One job, top to bottom:

    encode → seeded noise → staged loop over the plan → latents out → decode → verified writes → manifest

The library API the CLI and every app use:

    from fbgen.config import load_config
    from fbgen.engine import Engine, Job
    config = load_config("configs/wan2.1-14b-1.3b-lsl.yaml")
    engine = Engine.open(config)
    record = engine.render(Job.of(config, "a red fox in the snow", seed=7))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

import fbgen
from fbgen.config import RunConfig
from fbgen.core import interrupts
from fbgen.core.errors import FbgenError, ModelError
from fbgen.core.flops import executed_flops
from fbgen.core.sampler import Denoiser, Prediction, guided, sample
from fbgen.core.schedule import Plan
from fbgen.engine.job import Job, job_name
from fbgen.engine.loading import accelerate, load_loras, reset_cache, torchao_config
from fbgen.engine.memory import choose, gpu_budget, memory_plan, needs_choice
from fbgen.engine.planning import make_plan, plan_flops_for, scheduler_differences
from fbgen.engine.preflight import check_quantization, check_writable, preflight
from fbgen.engine.progress import NoProgress, Progress
from fbgen.engine.residency import Residency
from fbgen.engine.sources import Sources
from fbgen.engine.work import WorkTally
from fbgen.families.base import Family, Weights
from fbgen.outputs.checksums import path_sha256
from fbgen.outputs.frames import write_png_frames
from fbgen.outputs.latents import SUFFIX, write_latents
from fbgen.outputs.manifest import environment, now, write_json
from fbgen.outputs.video import upscale, write_mp4


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


@dataclass
class Denoised:
    """What the staged loop leaves: final latents, the generator the noise came from (LTX draws its decode noise
    from it), the plan it followed and the wall time of each stage."""

    latents: torch.Tensor
    generator: torch.Generator
    plan: Plan
    stage_wall: list[float]


@dataclass
class Engine:
    """Components loaded once for the load-time keys of a config; `render` makes one video of a job."""

    config: RunConfig  # its load-time keys are what was loaded; its job keys are only defaults
    sources: Sources
    family: Family
    residency: Residency
    device: torch.device
    dtype: torch.dtype
    load_s: float
    progress: Progress = field(default_factory=NoProgress)
    lora_pins: dict[str, dict[str, Any]] = field(default_factory=dict)  # applied LoRAs with their sha256
    work: dict[str, WorkTally] = field(default_factory=dict)  # what models with a cache hook really computed
    offload_reason: str | None = None  # why `offload: auto` chose what it chose

    @classmethod
    def open(cls, config: RunConfig, progress: Progress | None = None) -> Engine:
        """Probe the machine, resolve and check every source (configs only), then load the weights once."""
        start = time.perf_counter()
        progress = progress or NoProgress()
        preflight(config)  # no GPU, an unwritable output dir or a missing attention package: before any weights
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
        sources = Sources.open(config)  # missing or mismatched models fail here, before anything is written
        check_writable(config.output_dir, config.source)
        progress.phase(f"loading {', '.join(f'{m}={s.id}' for m, s in sources.transformers.items())} on {device} "
                       f"({str(dtype).removeprefix('torch.')}, offload {config.offload})")  # fmt: skip
        if config.expert_switch is None and sources.expert_switch is not None:  # jobs may take the switch from it
            config = replace(config, expert_switch=sources.expert_switch)
        first, plan = make_plan(config, sources.family, sources.vae_config, sources.scheduler_config)
        offload_reason = None
        if needs_choice(config):  # the fastest residency (and quantization) whose planned peak fits, before loading
            config, offload_reason = choose(config, plan, sources, gpu_budget(config))
            offload_reason = f"auto: {offload_reason}"
            progress.phase(offload_reason)
            check_quantization(config)  # what auto chose must run here too
        for line in scheduler_differences(first, sources.scheduler_config) + sources.expert_notes(plan):
            progress.phase(f"note: {line}")
        adapter = sources.family.adapter()
        transformers = {
            m: Weights(src.path, sources.subfolders[m], sources.files[m][0] if m in sources.files else None,
                       torchao_config(config.quantization[m]) if m in config.quantization else None)
            for m, src in sources.transformers.items()
        }  # fmt: skip
        place = str(device) if config.offload == "none" and device.type == "cuda" else None  # no host copy first
        try:
            family = adapter.load(transformers, sources.text.path, sources.vae.path, str(device), dtype, place)
        except (OSError, ValueError, RuntimeError) as e:  # missing/corrupt weights, shape mismatches
            raise ModelError(f"{config.source}: cannot load models: {str(e).splitlines()[0]}") from e
        pins = load_loras(family.transformers, type(family.pipe), config)
        work = accelerate(family.transformers, config)
        residency = Residency(family.transformers, config.offload, device)
        sync(device)
        return cls(config, sources, family, residency, device, dtype, time.perf_counter() - start, progress, pins,
                   work, offload_reason)  # fmt: skip

    # -- the parts of one job ----------------------------------------------------------------------------------
    def plan(self, job: Job) -> tuple[Any, Plan]:
        """A fresh scheduler with the job's timesteps and which model runs each step."""
        return make_plan(job, self.sources.family, self.sources.vae_config, self.sources.scheduler_config,
                         str(self.device))  # fmt: skip

    def flops(self, job: Job, plan: Plan) -> dict[str, Any]:
        return plan_flops_for(job, plan, self.sources.family, self.sources.configs, self.sources.vae_config)

    def encode(self, jobs: list[Job]) -> list[Any]:
        """Each job's prompt conditioning. A text encoder released earlier is loaded again first."""
        if not self.family.has_text_encoder:
            self.progress.phase("loading the text encoder again")
            place = str(self.device) if self.device.type == "cuda" else None
            self.family.set_text_encoder(self.family.load_text_encoder(self.sources.text.path, self.dtype, place))
        return [self.family.encode(j.prompt, j.negative_prompt, j.uses_cfg(), j.video) for j in jobs]

    def release_text_encoder(self) -> None:
        """Once every prompt is encoded the text encoder (UMT5-XXL/T5-XXL: ~11 GB) is dead weight; `encode` brings
        it back if it is needed again."""
        self.family.set_text_encoder(None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def predictions(self, job: Job, cond: Any) -> dict[str, Prediction]:
        """Each model's (conditional, unconditional) prediction for this job, for a denoiser of one's own."""
        return {m: partial(self.family.predict, m, cond, video=job.video) for m in self.family.transformers}

    def denoise(self, job: Job, cond: Any, denoiser: Denoiser | None = None) -> Denoised:
        """Seeded noise → final latents along the job's plan. By default each step runs the plan's model with its
        guidance; `denoiser` replaces that for every step (calibration traces both models through it) while
        noise, scheduler, residency, cache resets and the stage clock stay the engine's."""
        scheduler, plan = self.plan(job)
        latents, generator = self.family.noise(job.seed, job.video)
        predictions = self.predictions(job, cond)
        denoisers = {
            m: denoiser or guided(predictions[m], job.guidance_scale[m]) for m in set(plan.models)
        }  # fmt: skip
        clock = _StageClock(plan, self.device, self.progress.step)
        place = self.residency.hook(plan.models)
        for tally in self.work.values():
            tally.reset()

        def before_step(i: int, model: str) -> None:
            place(i, model)
            if self.config.cache.get(model) and (i == 0 or plan.models[i - 1] != model):
                reset_cache(self.family.transformers[model])
            clock.before(i)

        latents = sample(scheduler, plan.models, denoisers, latents, before_step, clock.after)
        self.residency.finish()
        return Denoised(latents, generator, plan, clock.wall)

    def executed(self, job: Job, flops: dict[str, Any]) -> dict[str, Any]:
        """The FLOPs the last denoise really ran: the plan's, less the block work cache hooks skipped."""
        family, configs = self.sources.family, self.sources.configs
        shape = family.latent_shape(self.sources.vae_config, job.height, job.width, job.num_frames)
        skipped = {m: work.skipped_flops(family.block_flops(configs[m], shape, job.max_sequence_length))
                   for m, work in self.work.items()}  # fmt: skip
        return executed_flops(flops, skipped)

    def decode(self, job: Job, denoised: Denoised) -> Any:
        """Final latents → uint8 frames (F, H, W, 3) at the video's native size."""
        return self.family.decode(denoised.latents, job.video, denoised.generator)

    def autoencode(self, job: Job, frames: Any) -> Any:
        """Frames through the VAE and back (for families that can encode video): the ceiling of any trajectory."""
        return self.family.autoencode(frames, job.video)

    # -- whole videos ------------------------------------------------------------------------------------------
    def run(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """Every job, prompts encoded up front (then the text encoder is released), one video each."""
        start = time.perf_counter()
        self.progress.phase(f"encoding {len(jobs)} prompt(s); the text encoder is released afterwards")
        conds = self.encode(jobs)
        self.release_text_encoder()
        encode_s = (time.perf_counter() - start) / max(1, len(jobs))
        return [self.render(job, cond, encode_s=encode_s, total=len(jobs)) for job, cond in zip(jobs, conds)]

    def render(self, job: Job, cond: Any = None, encode_s: float = 0.0, total: int = 1) -> dict[str, Any]:
        """One video: denoise, then the job's outputs (latents first, so a failing decode leaves them), then its
        manifest. Returns the manifest record."""
        interrupts.check()  # a signal some library swallowed while loading stops here, before any work
        t_start = time.perf_counter()
        if cond is None:
            t0 = time.perf_counter()
            cond = self.encode([job])[0]
            encode_s = time.perf_counter() - t0
        scheduler, plan = self.plan(job)
        flops = self.flops(job, plan)
        name = job.name or job_name(job, plan.tag())
        out_dir = Path(job.output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.progress.item_start(job.index, total, name, plan)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

        t0 = time.perf_counter()
        denoised = self.denoise(job, cond)
        if not torch.isfinite(denoised.latents).all():
            raise FbgenError(f"{name}: NaN or inf in the latents after denoising (try dtype: float32 or bfloat16)")
        t1 = time.perf_counter()
        flops |= self.executed(job, flops)
        written: dict[str, Path] = {}
        scale = self.sources.family.view_scale
        decode_s = write_s = 0.0
        if "latents" in job.outputs:
            written["latents"] = write_latents(denoised.latents, denoised.generator.get_state(),
                                               self.latents_meta(job, name), out_dir / f"{name}{SUFFIX}")  # fmt: skip
            write_s = time.perf_counter() - t1
        tiled = self.fit_decode(job, plan)
        if {"mp4", "png"} & set(job.outputs):
            t2 = time.perf_counter()
            try:
                frames = upscale(self.decode(job, denoised), scale)
            except torch.OutOfMemoryError:  # the latents are the render: keep them, say how to finish it
                path = written.get("latents") or write_latents(denoised.latents, denoised.generator.get_state(),
                                                               self.latents_meta(job, name),
                                                               out_dir / f"{name}{SUFFIX}")  # fmt: skip
                raise FbgenError(f"{name}: the VAE decode ran out of GPU memory{' even tiled' if tiled else ''}; the "
                                 f"latents are saved: fbgen decode {path}") from None  # fmt: skip
            sync(self.device)
            t3 = time.perf_counter()
            if "mp4" in job.outputs:
                written["mp4"] = write_mp4(frames, out_dir / f"{name}.mp4", job.fps, job.crf)
            if "png" in job.outputs:
                written["png"] = write_png_frames(frames, out_dir / f"{name}-frames")
            decode_s, write_s = t3 - t2, write_s + time.perf_counter() - t3
        main = next(written[k] for k in ("mp4", "png", "latents") if k in written)
        outputs = {k: {"path": str(p), "sha256": path_sha256(p)} for k, p in written.items()}
        stages = [
            {"model": s.model, "start": s.start, "end": s.end, "flops": sum(flops["per_step"][s.start:s.end]),
             "wall_s": denoised.stage_wall[k]}
            for k, s in enumerate(plan.stages)
        ]  # fmt: skip
        record = {
            "fbgen_version": fbgen.__version__,
            "created": now(),
            "status": "done",
            "name": name,
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "seed": job.seed,
            "generator_device": "cpu",
            "family": self.config.family,
            "models": {m: {**src.pin(), "subfolder": self.sources.subfolders[m], "used": m in plan.models,
                           "quantization": self.quantization(m)}
                       for m, src in self.sources.transformers.items()},  # fmt: skip
            "text_encoder": self.sources.text.pin(),
            "vae": self.sources.vae.pin(),
            "schedule": job.schedule,
            "boundaries": list(job.boundaries),
            "boundary_unit": job.boundary_unit,
            "steps": job.steps,
            "solver": job.solver,
            "shift": job.shift,
            "guidance_scale": dict(job.guidance_scale),
            "max_sequence_length": job.max_sequence_length,
            "scheduler": {"class": type(scheduler).__name__,
                          "differs_from_checkpoint": scheduler_differences(scheduler, self.sources.scheduler_config)},
            "experts": None if self.sources.experts is None else {
                "high_noise": self.sources.experts[0], "low_noise": self.sources.experts[1],
                "boundary_ratio": self.sources.expert_switch, "notes": self.sources.expert_notes(plan)},
            "plan": [
                {"step": i, "model": m, "timestep": t, "sigma": s}
                for i, (m, t, s) in enumerate(zip(plan.models, plan.timesteps, plan.sigmas))
            ],
            "height": job.height,
            "width": job.width,
            "num_frames": job.num_frames,
            "fps": job.fps,
            "view_scale": scale,
            "output": str(main),
            "sha256": outputs[next(k for k, p in written.items() if p == main)]["sha256"],
            "outputs": outputs,
            "stages": stages,
            "flops": {k: v for k, v in flops.items() if k != "per_step"},
            "wall_s": {
                "load": self.load_s,
                "encode": encode_s,
                "denoise": t1 - t0,
                "decode": decode_s,
                "write": write_s,
                "total": time.perf_counter() - t_start + encode_s,
            },
            "peak_memory_bytes": _peak_memory(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "offload": self.config.offload,
            "offload_reason": self.offload_reason,
            "vae_tiling": tiled,
            "quantization": dict(self.config.quantization),
            "compile": self.config.compile,
            "lora": self.lora_pins,
            **environment(self.device),
            "config": self.manifest_config(job),
        }
        write_json(out_dir / f"{name}.json", record)
        self.progress.item_end(record)
        return record

    def fit_decode(self, job: Job, plan: Plan) -> bool:
        """Turn the VAE's tiling on for this job when its planned decode would not fit the budget (`memory_budget`,
        else the GPU's free memory now); off otherwise. Returns whether it is on."""
        vae = self.family.pipe.vae
        budget = gpu_budget(self.config)
        if budget is None or not hasattr(vae, "enable_tiling"):
            return False
        if self.config.memory_budget is not None:  # the whole decode phase must fit the stated budget
            need = memory_plan(self.config, plan, self.sources, job).peaks[self.config.offload]["decode"]
        else:  # free memory already excludes what is resident: the decode itself must fit it
            need = self.sources.family.decode_bytes(self.sources.vae_config, job.height, job.width, job.num_frames,
                                                    False)  # fmt: skip
        tiled = need > budget
        vae.enable_tiling() if tiled else vae.disable_tiling()
        if tiled:
            self.progress.phase(f"VAE tiling on: the decode needs ≈ {need / 2**30:.2f} GiB, {budget / 2**30:.2f} GiB "
                                f"available")  # fmt: skip
        return tiled

    def quantization(self, letter: str) -> dict[str, Any] | None:
        """How a model's weights are quantized, for its manifest entry (a GGUF file with its sha256)."""
        if letter in self.sources.files:
            path, sha256 = self.sources.files[letter]
            return {"method": "gguf", "file": str(path), "sha256": sha256}
        kind = self.config.quantization.get(letter)
        return None if kind is None else {"method": "torchao", "type": kind}

    def manifest_config(self, job: Job) -> dict[str, Any]:
        """The config this video was rendered with: the engine's load-time keys and the job's own."""
        data = (job.config or self.config).to_dict()
        for key in data:
            if hasattr(job, key) and key != "config":
                value = getattr(job, key)
                data[key] = list(value) if isinstance(value, tuple) else value
        data["prompts"] = [job.prompt]
        data["seed"] = job.seed
        return data

    def latents_meta(self, job: Job, name: str) -> dict[str, Any]:
        """What `fbgen decode` needs to turn saved latents into this job's video without the transformers."""
        vae = self.config.vae or self.config.models[self.config.large]
        return {"family": self.config.family, "name": name, "dtype": str(self.dtype).removeprefix("torch."),
                "vae": {"id": str(self.sources.vae.path), "hub_id": vae.id, "revision": self.sources.vae.revision},
                "height": job.height, "width": job.width, "num_frames": job.num_frames, "fps": job.fps,
                "max_sequence_length": job.max_sequence_length, "crf": job.crf,
                "options": {"decode_timestep": job.decode_timestep, "decode_noise_scale": job.decode_noise_scale},
                "seed": job.seed, "prompt": job.prompt}  # fmt: skip


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
