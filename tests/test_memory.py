"""The memory plan and what acts on it: weight bytes against what loading really allocates (plain and int8), plans
offline for every shipped config from fbgen's architecture configs, `offload: auto`'s choice for given budgets,
VAE tiling when a decode would not fit, and a decode that runs out of memory keeping its latents."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fbgen.cli import app
from fbgen.config import load_config
from fbgen.core.errors import BadInput, FbgenError
from fbgen.engine.decode import decode_file
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job
from fbgen.engine.memory import MODES, choose, memory_plan
from fbgen.engine.planning import make_plan
from fbgen.engine.sources import Sources
from fbgen.families.shipped import repositories, shipped

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
GiB = 2**30


def storage_bytes(model: torch.nn.Module) -> int:
    """Bytes the loaded weights occupy, looking inside torchao's quantized tensors (int8 data + scales)."""
    total = 0
    for p in model.parameters():
        inner = [getattr(p, n) for n in ("qdata", "scale", "zero_point") if isinstance(getattr(p, n, None),
                                                                                      torch.Tensor)]  # fmt: skip
        total += sum(t.numel() * t.element_size() for t in inner) if inner else p.numel() * p.element_size()
    return total


def test_weight_bytes_are_what_loading_allocates(write_config, tiny_pair):
    config = load_config(write_config(dtype="float32"))
    engine = Engine.open(config)
    memory = memory_plan(config, engine.plan(Job.of(config))[1], engine.sources)
    for letter, model in engine.family.transformers.items():
        assert memory.weights[letter] == storage_bytes(model)
    assert memory.text_encoder == storage_bytes(engine.family.pipe.text_encoder)
    assert memory.vae == storage_bytes(engine.family.pipe.vae)


def test_int8_weight_bytes_match_the_quantized_model(write_config):
    pytest.importorskip("torchao")
    config = load_config(write_config(dtype="bfloat16", quantization={"L": "int8_weight_only"}))
    engine = Engine.open(config)
    memory = memory_plan(config, engine.plan(Job.of(config))[1], engine.sources)
    loaded = storage_bytes(engine.family.transformers["L"])
    assert memory.weights["L"] == pytest.approx(loaded, rel=0.05)
    assert memory.weights["L"] < 0.75 * memory_plan(load_config(write_config(dtype="bfloat16")),
                                                    engine.plan(Job.of(config))[1], engine.sources).weights["L"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_plan_works_offline_for_every_shipped_config(path):
    """No network, no hub cache, no GPU: the shipped architecture configs stand in, and the plan says so."""
    result = CliRunner().invoke(app, ["plan", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    memory = data["memory"]
    assert set(memory["peaks"]) == set(MODES) and all(memory["host"][m] > 0 for m in MODES)
    if "demo" not in path.name:
        assert any(line.startswith("offline: planned from fbgen's shipped architecture configs") for line in
                   memory["lines"])  # fmt: skip
        assert all(v > 1e9 for v in memory["weights"].values())  # the real sizes, not tiny ones


def test_shipped_configs_have_the_published_sizes():
    """Parameter counts of the shipped architecture configs (meta device): the published model sizes."""
    from fbgen.engine.memory import tensor_shapes
    from fbgen.engine.sources import Source
    from fbgen.families.base import component_class
    from fbgen.families.wan import SPEC

    expected = {"Wan-AI/Wan2.1-T2V-1.3B-Diffusers": 1.42e9, "Wan-AI/Wan2.1-T2V-14B-Diffusers": 14.29e9,
                "Lightricks/LTX-Video-0.9.5": 1.92e9, "Lightricks/LTX-Video-0.9.7-dev": 13.04e9}  # fmt: skip
    assert set(expected) < set(repositories())
    for repo, size in expected.items():
        root = shipped(repo)
        cls = component_class(SPEC, root, "transformer")
        shapes = tensor_shapes(Source(repo, root), "transformer", cls)
        assert sum(torch.Size(s).numel() for s in shapes.values()) == pytest.approx(size, rel=0.01)
    assert json.loads((shipped("Wan-AI/Wan2.2-T2V-A14B-Diffusers") / "model_index.json").read_text())[
        "boundary_ratio"] == 0.875  # fmt: skip


def test_offload_auto_picks_the_fastest_that_fits():
    config = load_config(CONFIGS[[p.name for p in CONFIGS].index("wan2.1-14b-1.3b-lsl.yaml")], ["offload=auto"])
    sources = Sources.open(config, weights=False)
    plan = make_plan(config, sources.family, sources.vae_config)[1]
    memory = memory_plan(config, plan, sources)
    none, idle, group = (memory.peak(m) for m in MODES)
    assert none > idle > group  # at 480x832x81: 14B + 1.3B resident > the pair at a switch > block by block
    assert choose(config, plan, sources, none)[0].offload == "none"
    assert choose(config, plan, sources, none - 1)[0].offload == "idle"
    chosen, reason = choose(config, plan, sources, idle - 1)
    assert chosen.offload == "group" and "none needs" in reason and "idle needs" in reason
    with pytest.raises(BadInput, match="nothing fits"):
        choose(config, plan, sources, group - 1)
    assert choose(config, plan, sources, None)[0].offload == "none"  # no GPU: nothing to offload to


def test_quantization_auto_quantizes_only_when_that_is_what_fits():
    """`quantization: auto` with `offload: auto`: bf16 residencies first, then the same quantized, then group."""
    pytest.importorskip("torchao")
    config = load_config(CONFIGS[[p.name for p in CONFIGS].index("wan2.1-14b-1.3b-lsl.yaml")],
                         ["offload=auto", "quantization=auto", "device=cpu"])  # fmt: skip
    assert config.quantization == {"L": "auto", "S": "auto"}
    sources = Sources.open(config, weights=False)
    plan = make_plan(config, sources.family, sources.vae_config)[1]
    plain = memory_plan(replace(config, quantization={}), plan, sources)
    int8 = memory_plan(replace(config, quantization={"L": "int8_weight_only", "S": "int8_weight_only"}), plan, sources)
    assert choose(config, plan, sources, plain.peak("idle"))[0].quantization == {}
    chosen, reason = choose(config, plan, sources, int8.peak("none"))
    assert (chosen.offload, chosen.quantization) == ("none", {"L": "int8_weight_only", "S": "int8_weight_only"})
    assert "idle needs" in reason and int8.peak("none") < plain.peak("idle")


def test_auto_and_tiling_act_on_a_budget_and_say_so(write_config):
    """With a memory_budget the engine plans against it on any device: a budget only group fits, and a decode
    that would not fit it gets the VAE's tiling; both are recorded in the manifest."""
    probe = load_config(write_config(offload="auto"))
    sources = Sources.open(probe)
    memory = memory_plan(probe, make_plan(probe, sources.family)[1], sources)
    budget = (memory.peak("group") + memory.peak("idle")) // 2
    config = load_config(write_config(offload="auto", memory_budget=budget))
    engine = Engine.open(config)
    assert engine.config.offload == "group" and "auto: chose group" in engine.offload_reason
    record = engine.render(Job.of(config))
    assert record["offload"] == "group" and record["offload_reason"] == engine.offload_reason
    assert record["vae_tiling"] is (memory.peaks["group"]["decode"] > budget)
    tight = Engine.open(load_config(write_config(offload="group", memory_budget=memory.peaks["group"]["decode"] - 1)))
    assert tight.render(Job.of(tight.config))["vae_tiling"] is True  # the decode alone would not fit
    roomy = Engine.open(load_config(write_config(offload="auto", memory_budget="10GiB")))
    assert roomy.config.offload == "none" and roomy.render(Job.of(roomy.config))["vae_tiling"] is False


def test_a_decode_out_of_memory_keeps_the_latents_and_names_fbgen_decode(write_config, monkeypatch, tmp_path):
    config = load_config(write_config())
    engine = Engine.open(config)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(engine.family, "decode", out_of_memory)
    with pytest.raises(FbgenError, match=r"ran out of GPU memory; the latents are saved: fbgen decode .*\.latents"):
        engine.render(Job.of(config))
    out = Path(config.output_dir)
    latents = next(out.glob("*.latents.safetensors"))
    assert not list(out.glob("*.mp4"))  # nothing under a final video name
    monkeypatch.undo()
    written = decode_file(latents, None, ("mp4",), "cpu")
    assert written["mp4"].is_file()
