"""diffusers cache hooks per model: exact when they never skip, state reset at every model switch."""

import logging

import pytest
import torch
import yaml
from diffusers import WanPipeline
from engines import run_config
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import fbgen.demo.autoencoder  # noqa: F401  (diffusers loads the pair's autoencoder class once it is imported)
from fbgen.config import cache_hook, load_config
from fbgen.core.solvers import make_scheduler
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job
from fbgen.families import FAMILIES
from fbgen.families.demo import PAIR as DEMO_PAIR


def run(write_config, tiny_pair, cache, schedule="LSL", **keys):
    both_large = {"L": str(tiny_pair["large"]), "S": str(tiny_pair["large"])}  # two blocks each: a tail to skip
    config = load_config(write_config(models=both_large, schedule=schedule, steps=10, cache=cache, **keys))
    session = Engine.open(config)
    tail_calls = {m: 0 for m in session.family.transformers}
    for letter, model in session.family.transformers.items():

        def count(module, args, out, letter=letter):
            tail_calls[letter] += 1

        model.blocks[1].ffn.register_forward_hook(count)  # inside the block: not called when the block is skipped
    cond = session.encode([Job.of(config)])[0]
    job = Job.of(config, seed=0)
    denoised = session.denoise(job, cond)
    return denoised.latents, tail_calls, {m: work.computed_share() for m, work in session.work.items()}


def test_first_block_cache_that_never_skips_is_exact(write_config, tiny_pair):
    plain, calls, _ = run(write_config, tiny_pair, None)
    cached, cached_calls, _ = run(write_config, tiny_pair, {"type": "first_block", "threshold": 0.0})
    torch.testing.assert_close(cached, plain, rtol=0, atol=0)
    assert cached_calls == calls == {"L": 2 * 6, "S": 2 * 4}  # cond + uncond at every step


def test_cache_state_is_per_model_and_reset_at_every_switch(write_config, tiny_pair):
    # a threshold nothing stays below skips the tail after the first step of a stage, for each CFG branch
    _, calls, _ = run(write_config, tiny_pair, {"type": "first_block", "threshold": 1e9})
    assert calls == {"L": 2 * 2, "S": 2 * 1}  # L's two stages each start from a fresh cache, as does S's
    _, only_s, _ = run(write_config, tiny_pair, {"S": {"type": "first_block", "threshold": 1e9}, "L": "none"})
    assert only_s == {"L": 2 * 6, "S": 2 * 1}


# On the trained demo pair (random weights rarely look alike from step to step), each hook really skips work, and
# fbgen's loop gives exactly what diffusers' own WanPipeline gives with the same hook on the same transformer.
HOOKS = [{"type": "first_block", "threshold": 0.2}, {"type": "taylorseer", "cache_interval": 2},
         {"type": "seacache"}]  # fmt: skip


def computed_attention(model) -> list[int]:
    """Count the last block's query projections: skipped when a hook reuses or forecasts that block's work."""
    calls = [0]
    model.blocks[-1].attn1.to_q.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h["type"])
def test_each_cache_on_the_demo_pair_skips_work_and_equals_wan_pipeline(tmp_path, hook, caplog):
    prompt = "a red striped circle uppermost moving right slowly and a blue plain square lowermost moving left"
    steps = 20
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump({"family": "demo", "schedule": "LLL", "steps": steps, "prompt": prompt,
                                    "device": "cpu", "output_dir": str(tmp_path / "out"), "cache": hook}))  # fmt: skip
    config = load_config(path)
    session = Engine.open(config)
    ours_calls = computed_attention(session.family.transformers["L"])
    cond = session.encode([Job.of(config, prompt)])[0]
    job = Job.of(config, seed=5)
    with caplog.at_level(logging.WARNING, logger="diffusers"):
        denoised = session.denoise(job, cond)
        ours = denoised.latents
    assert not [r for r in caplog.records if "fail-open" in r.getMessage() or "running full" in r.getMessage()]
    assert ours_calls[0] < 2 * steps * 0.75, ours_calls  # at least a quarter of the forwards reuse cached work

    pipe = WanPipeline.from_pretrained(DEMO_PAIR / "large", use_safetensors=True)
    pipe.transformer.enable_cache(cache_hook(hook, FAMILIES["demo"]))
    pipe.scheduler = make_scheduler("unipc", config.shift)
    theirs_calls = computed_attention(pipe.transformer)
    theirs = pipe(prompt=prompt, negative_prompt="", height=48, width=48, num_frames=9, num_inference_steps=steps,
                  guidance_scale=config.guidance_scale["L"], max_sequence_length=24,
                  generator=torch.Generator("cpu").manual_seed(5), output_type="latent").frames  # fmt: skip
    assert ours_calls == theirs_calls
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_seacache_in_lsl_starts_each_stage_cleanly(tmp_path, caplog):
    """SeaCache needs the loop position (step, sigma, step count) in `cache_context`; after a model switch the
    stage's fresh state must not see a gap in steps (diffusers would then warn and run in full)."""
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump({"family": "demo", "schedule": "LSL", "steps": 20, "prompt": "a red circle",
                                    "device": "cpu", "output_dir": str(tmp_path / "out"),
                                    "cache": {"type": "seacache", "threshold": 0.5}}))  # fmt: skip
    config = load_config(path)
    session = Engine.open(config)
    calls = {m: computed_attention(session.family.transformers[m]) for m in ("L", "S")}
    cond = session.encode([Job.of(config, "a red circle")])[0]
    job = Job.of(config, seed=0)
    with caplog.at_level(logging.WARNING, logger="diffusers"):
        plan = session.denoise(job, cond).plan
    assert not [r for r in caplog.records if "SeaCache" in r.getMessage()]
    assert calls["L"][0] < 2 * plan.count("L") and calls["S"][0] < 2 * plan.count("S")


def test_cache_composes_with_regional_compile(write_config, tiny_pair):
    """A hook wraps block forwards that dynamo cannot trace in one graph: the blocks then compile with graph breaks
    instead of failing at the first forward (`fullgraph=True` raised `Unsupported`), and reuse works compiled."""
    import torch._dynamo

    torch._dynamo.reset()
    always = {"type": "first_block", "threshold": 1e9}  # reuses at every step but a stage's first
    plain, calls, work = run(write_config, tiny_pair, always)
    compiled, compiled_calls, compiled_work = run(write_config, tiny_pair, always, compile=True)
    torch.testing.assert_close(compiled, plain, rtol=1e-4, atol=1e-4)
    assert compiled_calls == calls == {"L": 2 * 2, "S": 2 * 1}
    # the work tally counts through compiled blocks too: the head block always runs, the tail only when computed
    units = ("attn1", "attn2", "ffn")  # two blocks: the head computes at every forward, the tail as counted above
    assert compiled_work == work
    assert work == {"L": {k: (1 + 4 / 12) / 2 for k in units}, "S": {k: (1 + 2 / 8) / 2 for k in units}}


def test_taylorseer_forecasts_ltx_blocks_too(write_ltx_config):
    """diffusers' default TaylorSeer pattern matches no LTX module either: the family names its own."""
    config = load_config(write_ltx_config(schedule="LLL", steps=8,
                                          cache={"type": "taylorseer", "cache_interval": 2}))  # fmt: skip
    session = Engine.open(config)
    model = session.family.transformers["L"]
    forwards, computed = [0], [0]
    model.register_forward_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))
    model.transformer_blocks[-1].attn1.to_q.register_forward_hook(lambda *_: computed.__setitem__(0, computed[0] + 1))
    cond = session.encode([Job.of(config)])[0]
    job = Job.of(config, seed=0)
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        plan = session.denoise(job, cond).plan
    assert forwards[0] == 8 and computed[0] < forwards[0]  # one batched CFG forward a step; some forecast
    # executed FLOPs hold for a batched CFG forward too
    executed = session.executed(job, session.flops(job, plan))["executed"]
    assert executed == counter.get_total_flops()


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h["type"])
def test_manifest_flops_executed_are_what_the_transformers_ran(tmp_path, hook):
    """The plan's FLOPs count every block at every step; with a cache hook the manifest also reports what really ran,
    which must equal torch's own count of the same denoise."""
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump({"family": "demo", "schedule": "LSL", "steps": 20, "prompt": "a red circle",
                                    "device": "cpu", "output_dir": str(tmp_path / "out"), "cache": hook}))  # fmt: skip
    config = load_config(path)
    session = Engine.open(config)
    cond = session.encode([Job.of(config)])[0]
    job = Job.of(config, seed=config.seed)
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH):  # decomposed into matmuls the counter sees
        with counter:
            session.denoise(job, cond)
        flops = session.render(job, cond)["flops"]
    assert flops["executed"] == counter.get_total_flops()
    assert flops["executed"] == sum(flops["executed_per_model"].values()) < flops["total"]  # work was skipped
    assert flops["executed_ratio"] == flops["executed"] / flops["large_only"]


def test_manifest_flops_executed_equal_the_plan_without_a_cache(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump({"family": "demo", "schedule": "LSL", "steps": 6, "prompt": "a red circle",
                                    "device": "cpu", "output_dir": str(tmp_path / "out")}))  # fmt: skip
    flops = run_config(load_config(path))[0]["flops"]
    assert flops["executed"] == flops["total"] and flops["executed_per_model"] == flops["per_model"]
