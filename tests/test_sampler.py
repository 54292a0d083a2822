"""fbgen's loop against diffusers' own WanPipeline, and the staged schedule against the plan."""

import numpy as np
import pytest
import torch
from diffusers import WanPipeline
from engines import final_latents, open_engine

from fbgen.config import load_config
from fbgen.core.sampler import guided
from fbgen.core.solvers import make_scheduler
from fbgen.engine.job import Job


def open_session(write_config, **overrides):
    config = load_config(write_config(**overrides))
    engine, cond = open_engine(config)
    assert cond.positive.shape == (1, 512, 32) and cond.negative.shape == (1, 512, 32)
    return config, engine, cond


@pytest.mark.parametrize("solver", ["unipc", "euler", "dpmpp"])
def test_lll_equals_diffusers_wan_pipeline(write_config, tiny_pair, solver):
    config, session, cond = open_session(write_config, schedule="LLL", solver=solver, steps=5)
    ours, _ = final_latents(session, config, cond, seed=3)
    frames = session.decode(Job.of(config, seed=3), session.denoise(Job.of(config, seed=3), cond))

    pipe = WanPipeline.from_pretrained(tiny_pair["large"], use_safetensors=True)
    pipe.scheduler = make_scheduler(solver, config.shift)
    kwargs = dict(prompt=config.prompts[0], negative_prompt="", height=config.height, width=config.width,
                  num_frames=config.num_frames, num_inference_steps=5, guidance_scale=5.0)  # fmt: skip
    theirs = pipe(**kwargs, generator=torch.Generator("cpu").manual_seed(3), output_type="latent").frames
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    video = pipe(**kwargs, generator=torch.Generator("cpu").manual_seed(3), output_type="np").frames[0]
    expected = (np.clip(video, 0, 1) * 255).round().astype(np.uint8)
    assert frames.shape == expected.shape == (config.num_frames, config.height, config.width, 3)
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1


def test_lsl_calls_models_in_planned_order(write_config):
    config, session, cond = open_session(write_config, schedule="LSL", steps=10, boundaries=[0.3, 0.7])
    calls = []
    for letter, model in session.family.transformers.items():
        model.register_forward_hook(lambda m, args, out, letter=letter: calls.append(letter))
    _, plan = final_latents(session, config, cond)
    assert "".join(plan.models) == "LLLSSSSLLL"
    # guidance 5 > 1: two forwards (cond, uncond) per step, both by the step's model
    assert calls == [m for m in plan.models for _ in range(2)]


def test_guidance_per_model_controls_cfg_forwards(write_config):
    config, session, cond = open_session(write_config, steps=5, guidance_scale={"L": 5.0, "S": 1.0})
    calls = []
    for letter, model in session.family.transformers.items():
        model.register_forward_hook(lambda m, args, out, letter=letter: calls.append(letter))
    _, plan = final_latents(session, config, cond)
    assert calls.count("S") == plan.count("S") and calls.count("L") == 2 * plan.count("L")


def test_one_scheduler_spans_the_switch(write_config, tiny_pair):
    """With the same weights under both letters, LSL must equal LLL exactly: UniPC keeps its history across the
    switch. Restarting the solver at the boundary (two sampler calls) would change the result."""
    pair = {"L": str(tiny_pair["large"]), "S": str(tiny_pair["large"])}
    config, session, cond = open_session(write_config, models=pair, schedule="LSL", steps=8)
    lsl, plan = final_latents(session, config, cond)
    assert set(plan.models) == {"L", "S"}
    lll_config = load_config(write_config(models=pair, schedule="LLL", steps=8))
    lll, _ = final_latents(session, lll_config, cond)
    torch.testing.assert_close(lsl, lll, rtol=0, atol=0)

    # the wrong way, for contrast: a fresh solver at the boundary loses UniPC's history and changes the result
    job = Job.of(config, seed=0)
    denoise = guided(session.predictions(job, cond)["L"], 5.0)
    latents, _ = session.family.noise(0, job.video)
    for part in (range(0, 4), range(4, 8)):
        scheduler, _ = session.plan(job)
        scheduler.set_begin_index(part.start)
        for i in part:
            t = scheduler.timesteps[i]
            latents = scheduler.step(denoise(latents, t), t, latents, return_dict=False)[0]
    assert not torch.allclose(latents, lll)


def test_different_schedules_start_from_the_same_noise(write_config):
    config, session, _ = open_session(write_config)
    video = Job.of(config).video
    a, b, c = (session.family.noise(seed, video)[0] for seed in (11, 11, 12))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (1, 16, 2, config.height // 8, config.width // 8)


def test_small_model_changes_the_result(write_config):
    config, session, cond = open_session(write_config, schedule="LSL", steps=6)
    lsl, _ = final_latents(session, config, cond)
    lll, _ = final_latents(session, load_config(write_config(schedule="LLL", steps=6)), cond)
    assert not torch.allclose(lsl, lll)
