"""Test helpers over the engine's public API: open once, encode, denoise a config's first prompt."""

from pathlib import Path

import yaml

from fbgen.config import RunConfig
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job


def open_engine(config: RunConfig) -> tuple[Engine, object]:
    """An engine and the encoded first prompt of the config (text encoder released, as a run does)."""
    engine = Engine.open(config)
    cond = engine.encode([Job.of(config)])[0]
    engine.release_text_encoder()
    return engine, cond


def final_latents(engine: Engine, config: RunConfig, cond: object, seed: int = 0):
    """The final latents and the plan of the config's first prompt from `seed`."""
    denoised = engine.denoise(Job.of(config, seed=seed), cond)
    return denoised.latents, denoised.plan


def run_config(config: RunConfig) -> list[dict]:
    """What `fbgen run` does: every prompt of the config, one engine."""
    from fbgen.engine.job import config_jobs

    return Engine.open(config).run(config_jobs(config))


def yaml_config(path: Path, data: dict) -> Path:
    """A run config file as a user writes one (loaded with `load_config`, so the file's own checks run)."""
    path.write_text(yaml.safe_dump(data))
    return path


def denoised_latents(config: RunConfig, seed: int = 0) -> tuple[Engine, object]:
    """A fresh engine and the final latents of the config's first prompt from `seed` (text encoder kept)."""
    engine = Engine.open(config)
    job = Job.of(config, seed=seed)
    return engine, engine.denoise(job, engine.encode([job])[0]).latents
