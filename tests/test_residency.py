"""Where transformers live. CUDA behaviour (pinned memory, side-stream prefetch, peak memory) skips on CPU."""

import copy

import pytest
import torch

from fbgen.apps.tiny import LARGE, SMALL, tiny_transformer
from fbgen.config import load_config
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job
from fbgen.engine.residency import Residency

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def run_latents(write_config, **overrides):
    config = load_config(write_config(**overrides))
    session = Engine.open(config)
    cond = session.encode([Job.of(config)])[0]
    return session.denoise(Job.of(config, seed=0), cond).latents.cpu()


@pytest.mark.parametrize("offload", ["idle", "group"])
def test_offload_modes_give_the_same_video(write_config, offload):
    expected = run_latents(write_config, offload="none")
    torch.testing.assert_close(run_latents(write_config, offload=offload), expected, rtol=0, atol=0)


def test_offload_is_a_no_op_on_cpu():
    models = {"L": tiny_transformer(**LARGE), "S": tiny_transformer(**SMALL)}
    residency = Residency(models, "idle", torch.device("cpu"))
    hook = residency.hook(list("LLSSL"))
    for i, m in enumerate("LLSSL"):
        hook(i, m)
    assert all(p.device.type == "cpu" for model in models.values() for p in model.parameters())


@cuda
def test_idle_keeps_this_and_the_next_stage_model_and_prefetches_at_stage_start():
    device = torch.device("cuda")
    models = {"L": tiny_transformer(**LARGE), "S": tiny_transformer(**SMALL)}
    residency = Residency(models, "idle", device)
    assert all(p.is_pinned() for model in models.values() for p in model.parameters())
    hook = residency.hook(list("LLSSL"))
    hook(0, "L")  # L swapped in; S already being copied in on the side stream, not yet swapped in
    assert _on_gpu(models["L"]) and not _on_gpu(models["S"])
    assert residency._pinned["S"].staged is not None
    hook(1, "L")
    hook(2, "S")  # L is needed again next stage: it stays
    assert _on_gpu(models["S"]) and _on_gpu(models["L"])
    hook(4, "L")  # S is not needed any more
    assert _on_gpu(models["L"]) and not _on_gpu(models["S"]) and residency._pinned["S"].staged is None
    residency.finish()  # L starts the next video: kept
    assert _on_gpu(models["L"])
    residency.close()
    assert not _on_gpu(models["L"])
    assert all(p.is_pinned() for model in models.values() for p in model.parameters())


@cuda
def test_idle_lsl_matches_none_on_gpu(write_config):
    expected = run_latents(write_config, offload="none", device="cuda")
    torch.testing.assert_close(run_latents(write_config, offload="idle", device="cuda"), expected)


@cuda
def test_idle_peak_memory_is_about_the_two_models_of_a_switch_not_all():
    device = torch.device("cuda")
    sizes = dict(num_layers=4, num_attention_heads=4, attention_head_dim=64, ffn_dim=1024)  # ~16 MB: no rounding noise
    models = {c: tiny_transformer(**sizes) for c in "ABC"}
    base = torch.cuda.memory_allocated(device)
    one = copy.deepcopy(models["A"]).to(device)
    size = torch.cuda.memory_allocated(device) - base  # one model as the allocator holds it
    del one
    torch.cuda.reset_peak_memory_stats(device)
    residency = Residency(models, "idle", device)
    hook = residency.hook(list("AABBCC"))
    for i, m in enumerate("AABBCC"):
        hook(i, m)
    residency.close()
    peak = torch.cuda.max_memory_allocated(device) - base
    assert 2 * size <= peak <= 2 * size * 1.05  # two at a switch, never all three


def _on_gpu(model) -> bool:
    return all(p.device.type == "cuda" for p in model.parameters())
