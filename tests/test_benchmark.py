"""The GPU speed harness also runs on CPU at tiny configs, so its arithmetic is checked here."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from fbgen.apps.tiny import LARGE, LTX_LARGE, tiny_transformer
from fbgen.config import validate
from fbgen.engine.loading import accelerate

ROOT = Path(__file__).parent.parent
BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def load_harness(name: str = "speed"):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("family", ["wan", "ltx"])
def test_tiny_run_writes_consistent_figures(tmp_path, family):
    speed = load_harness()
    out = tmp_path / "speed.json"
    variants = "cache=first_block:1e9@L,lora=S:4+solver=euler,attn=_native_math"
    speed.main(["--tiny", "--family", family, "--steps", "5", "--variants", variants, "--json", str(out)])
    result = json.loads(out.read_text())
    shape = result["shapes"][0]
    runs, summary = shape["runs"], shape["summary"]
    assert runs["LSL"]["models"] == "LLSSL" and runs["LLL"]["models"] == "LLLLL"
    assert all(len(r["step_s"]) == 5 and all(t > 0 for t in r["step_s"]) for r in runs.values())
    t = summary["step_s"]
    assert summary["lsl_ideal_s"] == pytest.approx(3 * t["L"] + 2 * t["S"])
    lsl = summary["LSL"]
    assert lsl["switch_overhead_s"] == pytest.approx(runs["LSL"]["total_s"] - summary["lsl_ideal_s"])
    assert lsl["speedup_vs_stock"] == pytest.approx(runs["stock"]["total_s"] / runs["LSL"]["total_s"])
    f = shape["per_forward_flops"]
    assert summary["flop_ratio_lsl_vs_lll"] == pytest.approx((3 * f["L"] + 2 * f["S"]) / (5 * f["L"]))
    assert list(shape["variants"]) == variants.split(",")
    assert all(v["runs"]["LSL"]["models"] == "LLSSL" for v in shape["variants"].values())
    # a cache hook that always reuses: L's blocks after the first compute only at the first step of each of its two
    # stages (cond + uncond: 4 of its 6 forwards); the first block computes at every forward
    cached = shape["variants"]["cache=first_block:1e9@L"]["runs"]["LSL"]["block_work_computed"]
    layers = (LTX_LARGE if family == "ltx" else LARGE)["num_layers"]
    assert cached == {"L": pytest.approx((1 + (layers - 1) * 4 / 6) / layers), "S": 1.0}
    # the next variant starts from plain models: the hook is gone, the LoRA runs on S only
    assert shape["variants"]["lora=S:4+solver=euler"]["runs"]["LSL"]["block_work_computed"] == {"L": 1.0, "S": 1.0}


def test_attention_backend_reaches_every_attention_processor():
    model = tiny_transformer(**LARGE)
    accelerate({"L": model}, validate({"models": {"L": "x"}, "prompt": "x", "attention_backend": "_native_math"}))
    backends = {
        str(m.processor._attention_backend)
        for m in model.modules()
        if hasattr(getattr(m, "processor", None), "_attention_backend")
    }
    assert backends == {"AttentionBackendName._NATIVE_MATH"}


def test_accelerations_study_scores_quality_and_counts_executed_flops(tmp_path):
    from fbgen.apps.compare import RunSpec, variant
    from fbgen.config import load_config
    from fbgen.engine.engine import Engine
    from fbgen.engine.job import Job

    study = load_harness("accelerations")
    out = tmp_path / "acc.json"
    config = str(ROOT / "configs" / "demo.yaml")
    result = study.main(["--config", config, "--pairs", "1", "--only", "none,first_block 0.2", "--json", str(out)])
    runs = {(r["acceleration"], r["schedule"]): r for r in result["runs"]}
    assert set(runs) == {(a, s) for a in ("none", "first_block 0.2") for s in ("LLL", "LSL")}
    assert runs["none", "LLL"]["psnr"] == 100 and runs["none", "LLL"]["flops_vs_reference"] == 1
    # counted FLOPs agree with fbgen's analytic plan FLOPs where no hook skips anything
    base = load_config(config, output_dir=str(tmp_path))
    session = Engine.open(base)
    jobs = {s: variant(Job.of(base), RunSpec(s, s, base.boundaries)) for s in ("LLL", "LSL")}
    totals = {s: session.flops(job, session.plan(job)[1])["total"] for s, job in jobs.items()}
    assert runs["none", "LSL"]["flops_vs_reference"] == pytest.approx(totals["LSL"] / totals["LLL"], rel=1e-6)
    # the cache reuses work on the trained pair, and the video stays close to plain LLL
    assert runs["first_block 0.2", "LLL"]["flops_vs_reference"] < 0.9
    # the v5 pair, this pair: 19.3 dB (SSS from the same seeds is 14.3 dB to LLL on average, docs/DEMO_RESULTS.md)
    assert 16 < runs["first_block 0.2", "LLL"]["psnr"] < 100
    table = out.with_suffix(".md").read_text()
    assert "| none | 20 | " in table and "| first_block 0.2 | 20 | " in table


def test_wan22_harness_runs_tiny_and_its_flops_add_up(tmp_path):
    """The Wan 2.2 three-model benchmark at tiny configs: the schedules it times and their FLOPs against stock."""
    wan22 = load_harness("wan22")
    out = tmp_path / "wan22.json"
    wan22.main(["--tiny", "--steps", "10", "--json", str(out)])
    result = json.loads(out.read_text())
    runs = result["runs"]
    assert runs["HL"]["models"] == "HHHHHHHLLL" and runs["HSL"]["models"] == "HHHHSSSSLL"
    assert set(runs["HSL-narrow"]["models"]) == set("HSL") and len(runs["stock"]["step_s"]) == 10
    f_l = runs["HL"]["flops"] / 10  # every HL step runs an expert (H and L have one config)
    f_s = (runs["HSL"]["flops"] - 6 * f_l) / 4
    assert 0 < f_s < f_l and result["summary"]["HSL"]["vs_stock_flops"] == pytest.approx(0.6 + 0.4 * f_s / f_l)


def test_memory_harness_runs_tiny(tmp_path):
    """The GPU memory/quantization harness at tiny configs on CPU: every mode it can run here leaves a result."""
    pytest.importorskip("torchao")
    memory = load_harness("memory")
    out = tmp_path / "memory.json"
    memory.main(["--tiny", "--steps", "3", "--modes", "none,group,int8", "--json", str(out)])
    runs = json.loads(out.read_text())["runs"]
    assert set(runs) == {"stock LLL", "none", "group", "int8"}
    assert all(len(runs[m]["step_s"]) == 3 and set(runs[m]["per_model_s"]) == {"L", "S"} for m in ("none", "int8"))


def test_relations_study_draws_the_clips_each_arm_promises():
    """Each arm's special clips are what its name says: the only cue left is the relation (no model is trained)."""
    relations = load_harness("demo_relations")
    for arm in ("move-alike", "canonical", "twins", "alike"):
        clips = relations.training_clips(arm, 40, seed=1)
        special = clips[20:]
        assert len(clips) == 40 and len({c.caption for c in special}) > 10  # fresh draws, not one clip again
        for clip in special:
            a, b = clip.things
            assert (a.direction, a.speed) == (b.direction, b.speed)
            assert (a.colour == b.colour) == (arm == "twins")
            if arm in ("twins", "alike"):
                assert a.texture == b.texture and (a.shape != b.shape) == (arm == "twins")
        if arm in ("canonical", "twins"):
            assert {c.relation for c in clips if c.relation} <= {"above", "left of"}
    assert all(len(c.things) == 2 for c in relations.training_clips("two-object", 30, seed=1))


def test_layout_study_draws_its_arms_and_scores_ground_truth_as_placed():
    """Each arm's frames are what its caption words say, and the score reads a ground-truth frame as placed and the
    same frame with the objects' places swapped as not (no model is trained)."""
    from dataclasses import replace

    from fbgen.demo.data import RADIUS, SIZE, Clip, held_out, render

    layout = load_harness("demo_layout")
    for arm in layout.ARMS:
        train, test = layout.clips(arm, 1, 30, held=False), layout.clips(arm, 7, 10, held=True)
        assert len({layout.caption(arm, c) for c in train}) > 10
        assert not any(held_out(layout.caption(arm, c)) for c in train)
        assert all(held_out(layout.caption(arm, c)) for c in test)
        for clip in train:
            ys = [t.centre(0)[1] for t in clip.things]
            assert len(ys) == (1 if arm == "single" else 2)
            if arm == "halves":
                assert ys[0] < SIZE / 2 < ys[1] and layout.caption(arm, clip).split()[3:8:4] == ["up", "down"]
            if arm == "stacked":
                assert layout.caption(arm, clip).split()[3] == clip.relation in ("above", "below")
            if arm == "tagged":
                words = layout.caption(arm, clip).split()[3:8:4]
                assert words == (["up", "down"] if ys[0] < ys[1] else ["down", "up"])
            if arm in ("stacked", "tagged"):
                assert min(ys) < SIZE / 2 < max(ys)
            frame = render(clip)[:1]
            assert layout.placed(arm, clip, frame)["placed"] == 1.0
            if arm == "single":  # the object mirrored into the other half
                (a,) = clip.things
                moved = Clip((replace(a, start=(a.start[0], SIZE - 2 * RADIUS - a.start[1])),), None, clip.background)
            else:  # the same objects, each where the other was
                a, b = clip.things
                moved = Clip((replace(a, start=b.start), replace(b, start=a.start)), clip.relation, clip.background)
            assert layout.placed(arm, clip, render(moved)[:1])["placed"] == 0.0
    z = torch.randn(3, 16, 2, 12, 12)
    with_xy = layout.with_coordinates(z, 4.0)
    assert with_xy.shape == (3, 18, 2, 12, 12) and torch.equal(with_xy[:, :16], z)
    assert torch.equal(with_xy[:, 16, :, :, 0], torch.full((3, 2, 12), -4.0))  # x: left edge
    assert torch.equal(with_xy[:, 17, :, -1], torch.full((3, 2, 12), 4.0))  # y: bottom row
