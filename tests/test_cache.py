"""diffusers cache hooks per model: exact when they never skip, state reset at every model switch."""

import torch

from fbgen.config import load_config
from fbgen.runner import Session
from fbgen.solvers import plan_run


def run(write_config, tiny_pair, cache, schedule="LSL"):
    both_large = {"L": str(tiny_pair["large"]), "S": str(tiny_pair["large"])}  # two blocks each: a tail to skip
    config = load_config(write_config(models=both_large, schedule=schedule, steps=10, cache=cache))
    session = Session.open(config)
    tail_calls = {m: 0 for m in session.family.transformers}
    for letter, model in session.family.transformers.items():

        def count(module, args, out, letter=letter):
            tail_calls[letter] += 1

        model.blocks[1].ffn.register_forward_hook(count)  # inside the block: not called when the block is skipped
    cond = session.family.encode(list(config.prompts), "", cfg=True)[0]
    scheduler, plan = plan_run(config)
    latents, _ = session.denoise(config, plan, scheduler, cond, 0)
    return latents, tail_calls


def test_first_block_cache_that_never_skips_is_exact(write_config, tiny_pair):
    plain, calls = run(write_config, tiny_pair, None)
    cached, cached_calls = run(write_config, tiny_pair, {"type": "first_block", "threshold": 0.0})
    torch.testing.assert_close(cached, plain, rtol=0, atol=0)
    assert cached_calls == calls == {"L": 2 * 6, "S": 2 * 4}  # cond + uncond at every step


def test_cache_state_is_per_model_and_reset_at_every_switch(write_config, tiny_pair):
    # a threshold nothing stays below skips the tail after the first step of a stage, for each CFG branch
    _, calls = run(write_config, tiny_pair, {"type": "first_block", "threshold": 1e9})
    assert calls == {"L": 2 * 2, "S": 2 * 1}  # L's two stages each start from a fresh cache, as does S's
    _, only_s = run(write_config, tiny_pair, {"S": {"type": "first_block", "threshold": 1e9}, "L": "none"})
    assert only_s == {"L": 2 * 6, "S": 2 * 1}
