"""LTX-Video family on tiny components built in code: exactness against LTXPipeline, call order, FLOPs, rules."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline
from torch.utils.flop_counter import FlopCounterMode

from fbgen.apps.tiny import LTX_LARGE, LTX_SMALL, build_tiny_ltx, tiny_ltx_transformer, tiny_ltx_vae
from fbgen.config import load_config
from fbgen.core.errors import BadInput, ModelError
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job
from fbgen.engine.sources import Sources
from fbgen.families.ltx import SCHEDULER, forward_flops
from fbgen.outputs.video import read_mp4


def fbgen(*args):
    """A command in-process (typer's runner): what a subprocess would see, without its ~8 s of imports."""
    from typer.testing import CliRunner

    from fbgen.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def fbgen_video(config_path, prompt="a red cat runs left", seed=0):
    config = load_config(config_path)
    engine = Engine.open(config)
    job = Job.of(config, prompt, seed)
    denoised = engine.denoise(job, engine.encode([job])[0])
    return engine, denoised.latents, engine.decode(job, denoised)


@pytest.mark.parametrize("decode", [(0.0, None), (0.05, 0.025)])
def test_lll_equals_ltx_pipeline(write_ltx_config, tiny_ltx, decode):
    timestep, noise = decode
    path = write_ltx_config(schedule="LLL", decode_timestep=timestep, decode_noise_scale=noise, fps=24)
    _, latents, frames = fbgen_video(path, seed=7)
    pipe = LTXPipeline.from_pretrained(tiny_ltx["large"])
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER)
    common = dict(prompt="a red cat runs left", negative_prompt="", height=64, width=64, num_frames=9,
                  num_inference_steps=5, guidance_scale=3.0, frame_rate=24, decode_timestep=timestep,
                  decode_noise_scale=noise)  # fmt: skip
    expected = pipe(**common, output_type="latent", generator=torch.Generator("cpu").manual_seed(7)).frames
    torch.testing.assert_close(latents, expected, rtol=1e-5, atol=1e-6)
    video = pipe(**common, output_type="np", generator=torch.Generator("cpu").manual_seed(7)).frames[0]
    reference = (video.clip(0, 1) * 255).round()
    assert abs(frames.astype(int) - reference.astype(int)).max() <= 1


def test_lsl_calls_models_in_plan_order_with_batched_cfg(write_ltx_config):
    config = load_config(write_ltx_config(steps=5))
    session = Engine.open(config)
    calls = []
    for letter, model in session.family.transformers.items():
        hook = lambda m, a, k, o, letter=letter: calls.append((letter, k["hidden_states"].shape[0]))  # noqa: E731
        model.register_forward_hook(hook, with_kwargs=True)
    job = Job.of(config, "a cat", 0)
    plan = session.denoise(job, session.encode([job])[0]).plan
    assert [c[0] for c in calls] == list(plan.models) == list("LLSSL")  # one batched forward per step
    assert all(batch == 2 for _, batch in calls)


@pytest.mark.parametrize("sizes", [LTX_LARGE, LTX_SMALL])
@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 2, 4)])
def test_flops_formula_matches_flop_counter(sizes, shape):
    model = tiny_ltx_transformer(**sizes)
    frames, height, width = shape
    x = torch.randn(1, frames * height * width, 8)
    text = torch.randn(1, 128, 32)
    with FlopCounterMode(display=False) as counter, torch.nn.attention.sdpa_kernel(
        torch.nn.attention.SDPBackend.MATH
    ):  # fmt: skip
        model(hidden_states=x, encoder_hidden_states=text, timestep=torch.tensor([500]),
              encoder_attention_mask=torch.ones(1, 128), num_frames=frames, height=height, width=width)  # fmt: skip
    assert forward_flops(model.config, shape, 128) == counter.get_total_flops()


def test_run_plan_and_batch_work_for_ltx(write_ltx_config, tmp_path):
    config = write_ltx_config()
    run = fbgen("run", config, "--json")
    assert run.returncode == 0, run.stderr
    item = json.loads(run.stdout)["items"][0]
    frames, meta = read_mp4(item["output"])
    assert frames.shape == (9, 64, 64, 3) and meta["fps"] == 25
    manifest = json.loads(Path(item["manifest"]).read_text())
    assert manifest["family"] == "ltx" and [p["model"] for p in manifest["plan"]] == list("LLSSL")
    assert 0 < manifest["flops"]["ratio"] < 1
    plan = fbgen("plan", config, "--json")
    assert plan.returncode == 0 and json.loads(plan.stdout)["flops"]["total"] == manifest["flops"]["total"]
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red cat\na blue dog\n")
    batch = fbgen("batch", prompts, "--config", config, "--json")
    assert batch.returncode == 0 and json.loads(batch.stdout)["done"] == 2


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"height": 48}, "ltx needs height and width divisible by 32"),
        ({"num_frames": 10}, "ltx needs 8k+1 frames (e.g. 9 or 17)"),
        ({"solver": "unipc"}, "key 'solver': must be one of euler"),
    ],
)
def test_bad_sizes_are_bad_input(write_ltx_config, overrides, message):
    with pytest.raises(BadInput, match=re.escape(message)):  # the CLI turns BadInput into one line, exit 2
        load_config(write_ltx_config(**overrides))


def test_ltx_only_keys_are_refused_for_wan(write_config):
    result = fbgen("run", write_config(decode_timestep=0.05))
    assert result.returncode == 2 and "key 'decode_timestep': only for family ltx" in result.stderr


def test_mismatched_pairs_are_refused_before_loading(write_ltx_config, tiny_ltx, tmp_path):
    def refusal(small):
        with pytest.raises(ModelError) as e:  # the CLI turns ModelError into one line, exit 3
            Sources.open(load_config(write_ltx_config(models={"L": str(tiny_ltx["large"]), "S": str(small)})))
        return str(e.value)

    assert "in_channels is 8 vs 16" in refusal(build_tiny_ltx(tmp_path / "wide", latent_channels=16)["small"])
    # same transformer shapes, but trained with a different VAE (no timestep conditioning, like 0.9.1)
    old = tmp_path / "old"
    pipe = LTXPipeline.from_pretrained(tiny_ltx["small"])
    pipe.vae = tiny_ltx_vae(timestep_conditioning=False)
    pipe.save_pretrained(old, safe_serialization=True)
    message = refusal(old)
    assert "another VAE" in message and "timestep_conditioning" in message
    refusal(tmp_path / "none")
