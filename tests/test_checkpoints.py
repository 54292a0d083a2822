"""Checkpoints read the way diffusers reads them, tested against diffusers' own pipelines on tiny components saved
in each layout: component classes from model_index.json, Wan 2.2's two-expert layout and boundary switch, LTX's
shift from the loaded VAE, the prompt length, and the checkpoint's scheduler config."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import LTXPipeline, WanPipeline
from engines import denoised_latents, yaml_config

from fbgen.apps.tiny import (
    SMALL,
    tiny_ltx_vae,
    tiny_t5,
    tiny_tokenizer,
    tiny_transformer,
    tiny_vae,
)
from fbgen.config import load_config
from fbgen.core.errors import ModelError
from fbgen.core.solvers import make_scheduler
from fbgen.engine.job import Job
from fbgen.engine.planning import make_plan
from fbgen.engine.sources import Sources
from fbgen.families import FAMILIES


def write(tmp_path, data, name="run.yaml"):
    return load_config(yaml_config(tmp_path / name, data))


def test_two_experts_of_one_repository_switch_exactly_as_wan_pipeline(tmp_path, wan22):
    """`{id, subfolder}` letters from one repository, `boundary_unit: sigma` at the checkpoint's boundary_ratio and
    per-expert guidance: fbgen's two-stage run is WanPipeline's own Wan 2.2 run."""
    config = write(tmp_path, {
        "models": {"H": {"id": str(wan22), "subfolder": "transformer"},
                   "W": {"id": str(wan22), "subfolder": "transformer_2"}},
        "schedule": "HW", "boundaries": [0.875], "boundary_unit": "sigma", "steps": 8, "shift": 12.0,
        "guidance_scale": {"H": 4.0, "W": 3.0}, "height": 32, "width": 48, "num_frames": 5, "prompt": "a red cat",
        "device": "cpu", "output_dir": str(tmp_path / "out"),
    })  # fmt: skip
    engine, ours = denoised_latents(config, seed=4)
    assert engine.sources.subfolders == {"H": "transformer", "W": "transformer_2"}
    plan = engine.plan(Job.of(config))[1]
    assert "H" in plan.models and "W" in plan.models
    pipe = WanPipeline.from_pretrained(wan22, use_safetensors=True)
    theirs = pipe(prompt="a red cat", negative_prompt="", height=32, width=48, num_frames=5, num_inference_steps=8,
                  guidance_scale=4.0, guidance_scale_2=3.0, generator=torch.Generator("cpu").manual_seed(4),
                  output_type="latent").frames  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("solver", ["unipc", "euler", "dpmpp"])
@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0, 12.0])
@pytest.mark.parametrize("steps", [4, 7, 20, 40, 50])
def test_sigma_boundaries_switch_where_wan_pipeline_switches(solver, shift, steps):
    """WanPipeline: `transformer` while the integer timestep t >= boundary_ratio * 1000, then `transformer_2`. The
    float sigma disagrees with that at some ratios (e.g. 0.8335); fbgen compares what WanPipeline compares."""
    for ratio in [0.5, 0.8, 0.8335, 0.875, 0.9, 0.95, 0.999]:
        sampling = SimpleNamespace(solver=solver, shift=shift, steps=steps, schedule="HW", boundaries=(ratio,),
                                   boundary_unit="sigma")  # fmt: skip
        scheduler, plan = make_plan(sampling, FAMILIES["wan"])
        boundary = ratio * scheduler.config.num_train_timesteps
        theirs = ["H" if t >= boundary else "W" for t in scheduler.timesteps]
        assert list(plan.models) == theirs, (ratio, solver, shift, steps)


def test_text_encoder_class_comes_from_model_index(tmp_path):
    """A Wan checkpoint whose model_index names T5EncoderModel loads as T5 (diffusers does the same), not as UMT5
    with freshly initialised position tables."""
    torch.manual_seed(2)
    root = tmp_path / "wan-t5"
    WanPipeline(tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(), vae=tiny_vae(),
                scheduler=make_scheduler("unipc", 3.0), transformer=tiny_transformer(**SMALL)).save_pretrained(root)
    assert json.loads((root / "model_index.json").read_text())["text_encoder"] == ["transformers", "T5EncoderModel"]
    config = write(tmp_path, {"models": {"L": str(root)}, "schedule": "LLL", "steps": 4, "height": 32, "width": 48,
                              "num_frames": 5, "prompt": "a red cat", "device": "cpu",
                              "output_dir": str(tmp_path / "out")})  # fmt: skip
    engine, ours = denoised_latents(config, seed=1)
    assert type(engine.family.pipe.text_encoder).__name__ == "T5EncoderModel"
    pipe = WanPipeline.from_pretrained(root)
    pipe.scheduler = make_scheduler("unipc", 3.0)
    theirs = pipe(prompt="a red cat", negative_prompt="", height=32, width=48, num_frames=5, num_inference_steps=4,
                  generator=torch.Generator("cpu").manual_seed(1), output_type="latent").frames  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("named", [["os", "system"], ["diffusers", "NotAModel"], ["transformers", "AutoConfig"],
                                   ["diffusers", "DiffusionPipeline"]])  # fmt: skip
def test_a_class_fbgen_would_not_load_is_refused_before_loading(tmp_path, tiny_pair, named):
    import shutil

    root = tmp_path / "odd"
    shutil.copytree(tiny_pair["large"], root)
    index = json.loads((root / "model_index.json").read_text())
    index["text_encoder"] = named
    (root / "model_index.json").write_text(json.dumps(index))
    config = write(tmp_path, {"models": {"L": str(root)}, "schedule": "LLL", "prompt": "x", "device": "cpu",
                              "height": 32, "width": 48, "num_frames": 5, "output_dir": str(tmp_path / "out")})
    with pytest.raises(ModelError, match="not a model or tokenizer class of diffusers or transformers"):
        Sources.open(config)


def test_max_sequence_length_is_a_config_key(write_config, tiny_pair):
    config = load_config(write_config(schedule="LLL", steps=3, max_sequence_length=24))
    engine, ours = denoised_latents(config, seed=2)
    cond = engine.encode([Job.of(config)])[0]
    assert cond.positive.shape[1] == 24
    pipe = WanPipeline.from_pretrained(tiny_pair["large"], use_safetensors=True)
    pipe.scheduler = make_scheduler("unipc", 3.0)
    theirs = pipe(prompt=config.prompts[0], negative_prompt="", height=32, width=48, num_frames=5,
                  num_inference_steps=3, max_sequence_length=24, generator=torch.Generator("cpu").manual_seed(2),
                  output_type="latent").frames  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    record = engine.render(Job.of(config))
    assert record["max_sequence_length"] == 24
    longer = Job.of(config).changed(max_sequence_length=512)  # the text tokens are in the FLOPs formula too
    assert record["flops"]["per_forward"]["L"] < engine.flops(longer, engine.plan(longer)[1])["per_forward"]["L"]


def test_ltx_shift_and_scheduler_come_from_the_checkpoint(tmp_path):
    """An LTX checkpoint whose VAE compresses 16x (not the 32x of 0.9.5) and whose scheduler config has its own
    shift range: the dynamic shift is LTXPipeline's for the loaded VAE and scheduler."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from fbgen.apps.tiny import LTX_SMALL, tiny_ltx_transformer

    torch.manual_seed(3)
    root = tmp_path / "ltx-16x"
    vae = tiny_ltx_vae()
    vae.register_to_config(spatial_compression_ratio=16)
    vae.spatial_compression_ratio = 16
    scheduler = FlowMatchEulerDiscreteScheduler(base_image_seq_len=64, max_image_seq_len=1024, base_shift=0.5,
                                                max_shift=2.5, shift_terminal=0.1, use_dynamic_shifting=True)
    LTXPipeline(scheduler=scheduler, vae=vae, text_encoder=tiny_t5(), tokenizer=tiny_tokenizer(),
                transformer=tiny_ltx_transformer(**LTX_SMALL)).save_pretrained(root)
    assert LTXPipeline.from_pretrained(root).vae_spatial_compression_ratio == 16
    config = write(tmp_path, {"family": "ltx", "models": {"L": str(root)}, "schedule": "LLL", "steps": 5,
                              "height": 64, "width": 64, "num_frames": 9, "guidance_scale": 3.0,
                              "prompt": "a red cat", "device": "cpu", "output_dir": str(tmp_path / "out")})
    # a VAE that does not fit this transformer is beside the point: only the timesteps are compared
    engine_plan = make_plan(config, FAMILIES["ltx"], json.loads((root / "vae" / "config.json").read_text()),
                            json.loads((root / "scheduler" / "scheduler_config.json").read_text()))[0]  # fmt: skip
    pipe = LTXPipeline.from_pretrained(root)
    seen = []
    pipe(prompt="a red cat", height=64, width=64, num_frames=9, num_inference_steps=5, guidance_scale=3.0,
         output_type="latent", generator=torch.Generator("cpu").manual_seed(0),
         callback_on_step_end=lambda p, i, t, kw: (seen.append(float(t)), {})[1])  # fmt: skip
    np.testing.assert_allclose([float(t) for t in engine_plan.timesteps], seen, rtol=1e-6)
    default = make_plan(config, FAMILIES["ltx"])[0]  # the 0.9.5 release's scheduler and 32x VAE
    assert not np.allclose([float(t) for t in default.timesteps], seen)


def test_a_scheduler_config_fbgen_does_not_follow_is_stated(write_config, tmp_path):
    """The tiny pair ships UniPC with shift 3; a config with shift 5 runs shift 5 and says so (plan and manifest)."""
    from typer.testing import CliRunner

    from fbgen.cli import app

    plan = CliRunner().invoke(app, ["plan", str(write_config(shift=5.0)), "--json"])
    assert plan.exit_code == 0, plan.output
    notes = json.loads(plan.output)["scheduler"]["differs_from_checkpoint"]
    assert notes == ["scheduler flow_shift: checkpoint 3.0, fbgen 5.0"]
    same = CliRunner().invoke(app, ["plan", str(write_config()), "--json"])
    assert json.loads(same.output)["scheduler"]["differs_from_checkpoint"] == []
