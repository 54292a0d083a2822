"""The engine is opened once and renders any number of jobs; families keep no state between calls; outputs go
through verified writers (MP4, PNG frames, latents) and `fbgen decode` turns saved latents into the same video."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from fbgen.config import load_config
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job, config_jobs
from fbgen.outputs.frames import read_png_frames
from fbgen.outputs.video import read_mp4


def fbgen(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fbgen", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)  # fmt: skip


def test_an_engine_renders_any_number_of_runs(write_config, tmp_path):
    """A second `run` once the text encoder was released loads it again; the videos are the same."""
    config = load_config(write_config(prompts=["a red cat", "a blue dog"], steps=3))
    engine = Engine.open(config)
    first = engine.run(config_jobs(config))
    assert not engine.family.has_text_encoder
    again = engine.run([j.changed(output_dir=str(tmp_path / "again")) for j in config_jobs(config)])
    assert [read_mp4(r["output"])[0].tobytes() for r in first] == [read_mp4(r["output"])[0].tobytes() for r in again]
    other = engine.render(Job.of(config, "a green bird", seed=9).changed(steps=2, height=48))
    assert other["steps"] == 2 and other["height"] == 48 and other["seed"] == 9


def test_ltx_adapter_keeps_no_state_between_jobs(write_ltx_config):
    """Size, frame rate and decode noise come with each job: interleaving two jobs gives what each gives alone."""
    config = load_config(write_ltx_config(schedule="LLL", steps=3))
    a = Job.of(config, seed=1)
    b = Job.of(config, seed=2).changed(fps=12, width=96, decode_timestep=0.1)
    engine = Engine.open(config)
    cond_a, cond_b = engine.encode([a, b])

    def frames(job, cond):
        return engine.decode(job, engine.denoise(job, cond))

    alone_a = frames(a, cond_a)
    alone_b = frames(b, cond_b)
    assert np.array_equal(frames(a, cond_a), alone_a) and np.array_equal(frames(b, cond_b), alone_b)
    assert alone_b.shape[2] == 96 and alone_a.shape[2] == 64


def test_every_output_is_written_and_latents_decode_to_the_same_video(write_config, tmp_path):
    from typer.testing import CliRunner

    from fbgen.cli import app

    config = load_config(write_config(schedule="LLL", steps=3, outputs=["mp4", "png", "latents"], crf=0))
    record = Engine.open(config).render(Job.of(config))
    manifest = json.loads(Path(record["output"]).with_suffix(".json").read_text())
    outputs = manifest["outputs"]
    assert set(outputs) == {"mp4", "png", "latents"} and all(len(o["sha256"]) == 64 for o in outputs.values())
    video = read_mp4(outputs["mp4"]["path"])[0]
    assert read_png_frames(outputs["png"]["path"]).shape == video.shape
    later = tmp_path / "later"
    decoded = CliRunner().invoke(app, ["decode", outputs["latents"]["path"], "--out", str(later), "--png", "--json"])
    assert decoded.exit_code == 0, decoded.output
    written = json.loads(decoded.output)["outputs"]
    assert np.array_equal(read_mp4(written["mp4"])[0], video)
    assert np.array_equal(read_png_frames(written["png"]), read_png_frames(outputs["png"]["path"]))
    again = CliRunner().invoke(app, ["decode", outputs["latents"]["path"], "--out", str(later)])
    assert again.exit_code == 2 and "never overwrites" in again.output  # a finished video is never overwritten
    assert not [p for p in tmp_path.rglob("*") if ".partial" in p.name]


def test_latents_only_skips_the_decode_and_a_batch_item_counts_as_done(write_config, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red cat\n")
    path = write_config(schedule="LLL", steps=2, outputs=["latents"])
    result = fbgen("batch", prompts, "--config", path, "--json")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert len(list(out.glob("*.latents.safetensors"))) == 1 and not list(out.glob("*.mp4"))
    from fbgen.apps.status import batch_status

    assert batch_status(out)["complete"]
    record = json.loads(next(out.glob("*.json")).read_text())
    assert record["wall_s"]["decode"] == 0 and record["output"].endswith(".latents.safetensors")


def test_a_load_time_override_in_a_batch_item_fails_that_item_only(write_config, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a red cat"}\n{"prompt": "a blue dog", "cache": {"type": "first_block"}}\n'
                       '{"prompt": "a green bird", "steps": 2}\n')  # fmt: skip
    result = fbgen("batch", prompts, "--config", write_config(steps=3), "--json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["done"] == 2 and summary["failed"] == 1
    assert "line 2: cache cannot change per video" in result.stderr


def test_crf_sets_the_quality(write_config, tmp_path):
    config = load_config(write_config(schedule="LLL", steps=2))
    engine = Engine.open(config)
    sizes = {crf: Path(engine.render(Job.of(config).changed(crf=crf, output_dir=str(tmp_path / f"crf{crf}")))["output"]
                       ).stat().st_size for crf in (0, 40)}  # fmt: skip
    assert sizes[0] > sizes[40]


def test_denoise_takes_another_denoiser(write_config):
    """What calibration uses: the engine's noise, scheduler and plan with a velocity of one's own."""
    config = load_config(write_config(schedule="LLL", steps=3))
    engine = Engine.open(config)
    job = Job.of(config)
    cond = engine.encode([job])[0]
    seen = []

    def zero(latents, t, step):
        seen.append(step.index)
        return torch.zeros_like(latents)

    out = engine.denoise(job, cond, denoiser=zero)
    assert seen == [0, 1, 2] and torch.isfinite(out.latents).all()
