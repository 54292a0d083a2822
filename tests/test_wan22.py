"""Wan 2.2 A14B's two experts with a 1.3B in the middle, on tiny components in the real layouts: a Wan 2.2
repository (transformer + transformer_2, one VAE, one text encoder, boundary_ratio in model_index.json) and a Wan 2.1
repository for the small model. The stock run against WanPipeline, the checkpoint's switch read, three models in plan
order, what does not fit refused before loading, residency, plan, calibrate and compare for three models."""

import dataclasses
import json
import shutil

import pytest
import torch
import yaml
from diffusers import WanPipeline
from engines import yaml_config
from typer.testing import CliRunner

from fbgen.apps.batch import Item
from fbgen.apps.calibrate import calibrate, roles
from fbgen.apps.compare import compare, run_specs
from fbgen.cli import app
from fbgen.config import load_config, validate
from fbgen.core.errors import BadInput, ModelError
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job
from fbgen.engine.residency import Residency
from fbgen.engine.sources import Sources

PROMPT = "a red cat runs left"


def experts(root):
    return {"H": {"id": str(root), "subfolder": "transformer"}, "L": {"id": str(root), "subfolder": "transformer_2"}}


def write(tmp_path, models, name="run.yaml", **keys):
    data = {"family": "wan", "models": models, "steps": 8, "shift": 12.0, "height": 32, "width": 48,
            "num_frames": 5, "prompt": PROMPT, "device": "cpu", "output_dir": str(tmp_path / "out"),
            **keys}  # fmt: skip
    return yaml_config(tmp_path / name, data)


def copy_repo(src, dst, edit=None):
    """A copy of a tiny repository with some JSON files edited: {relative path: {key: value}}."""
    shutil.copytree(src, dst)
    for rel, changes in (edit or {}).items():
        path = dst / rel
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return dst


def test_stock_run_takes_the_switch_from_the_checkpoint_and_equals_wan_pipeline(tmp_path, wan22):
    """No boundaries in the config: the checkpoint's boundary_ratio, compared as WanPipeline compares it, with
    per-expert guidance as guidance_scale / guidance_scale_2: the same latents as WanPipeline's own two-expert run."""
    config = load_config(write(tmp_path, experts(wan22), schedule="HL", guidance_scale={"H": 4.0, "L": 3.0}))
    assert (config.boundaries, config.boundary_unit, config.expert_switch) == ((0.875,), "sigma", 0.875)
    engine = Engine.open(config)
    job = Job.of(config, seed=4)
    ours = engine.denoise(job, engine.encode([job])[0]).latents
    pipe = WanPipeline.from_pretrained(wan22, use_safetensors=True)
    assert pipe.config.boundary_ratio == 0.875
    theirs = pipe(prompt=PROMPT, negative_prompt="", height=32, width=48, num_frames=5, num_inference_steps=8,
                  guidance_scale=4.0, guidance_scale_2=3.0, generator=torch.Generator("cpu").manual_seed(4),
                  output_type="latent").frames  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    record = engine.render(job)
    assert record["experts"] == {"high_noise": "H", "low_noise": "L", "boundary_ratio": 0.875, "notes": []}
    assert record["models"]["L"]["subfolder"] == "transformer_2" and record["boundary_unit"] == "sigma"


def test_the_switch_is_read_not_assumed(tmp_path, wan22):
    other = copy_repo(wan22, tmp_path / "ratio", {"model_index.json": {"boundary_ratio": 0.95}})
    assert load_config(write(tmp_path, experts(other), schedule="HL")).boundaries == (0.95,)
    given = load_config(write(tmp_path, experts(other), schedule="HL", boundaries=[0.5], boundary_unit="sigma"))
    assert given.boundaries == (0.5,)  # the config's own boundaries win
    none = copy_repo(wan22, tmp_path / "none", {"model_index.json": {"boundary_ratio": None}})
    with pytest.raises(BadInput, match="key 'boundaries': schedule HL needs 1 boundary"):
        load_config(write(tmp_path, experts(none), schedule="HL"))
    hub = {"H": {"id": "org/not-cached", "subfolder": "transformer"},
           "L": {"id": "org/not-cached", "subfolder": "transformer_2"}}  # fmt: skip
    with pytest.raises(ModelError, match="org/not-cached: cannot read model_index.json"):
        load_config(write(tmp_path, hub, schedule="HL"))  # the hub is off in tests: exit 3, one line
    # a batch item or compare variant going back to the experts' own schedule takes the switch from its base
    base = load_config(write(tmp_path, {**experts(other), "S": "unused"}, schedule="HSL"))
    assert base.expert_switch is None  # not needed, not read; `Engine.open` records it from the checkpoint
    item = validate({"schedule": "HL", "boundaries": []}, "item", base=dataclasses.replace(base, expert_switch=0.95))
    assert item.boundaries == (0.95,) and item.boundary_unit == "sigma"


def test_three_models_run_in_plan_order_and_each_expert_on_its_side(tmp_path, wan22, tiny_pair):
    """High-noise expert, the small model of another repository, low-noise expert: every forward in plan order
    (two per step with CFG), the shared text encoder and VAE from the experts' repository."""
    models = {**experts(wan22), "S": str(tiny_pair["small"])}
    config = load_config(write(tmp_path, models, schedule="HSL", steps=10, guidance_scale={"H": 4.0, "S": 5.0,
                                                                                           "L": 3.0}))  # fmt: skip
    engine = Engine.open(config)
    assert engine.sources.experts == ("H", "L") and engine.sources.expert_switch == 0.875
    assert engine.config.expert_switch == 0.875  # jobs can go back to the experts' own schedule
    assert engine.sources.text.id == str(wan22) and engine.sources.transformers["S"].id == str(tiny_pair["small"])
    calls = []
    for letter, model in engine.family.transformers.items():
        model.register_forward_pre_hook(lambda module, args, letter=letter: calls.append(letter))
    job = Job.of(config)
    plan = engine.plan(job)[1]
    assert "".join(plan.models) == "HHHHSSSSLL"
    engine.denoise(job, engine.encode([job])[0])
    assert calls == [m for m in plan.models for _ in range(2)]
    assert engine.sources.expert_notes(plan) == []
    reversed_plan = engine.plan(job.changed("test", schedule="LSH"))[1]
    notes = engine.sources.expert_notes(reversed_plan)
    assert len(notes) == 2 and "low-noise expert but runs 4 step(s) (0..3)" in notes[1] and "high-noise" in notes[0]


@pytest.mark.parametrize("case", ["i2v-beside-1.3b", "i2v-experts", "ti2v", "ti2v-vae-beside-1.3b"])
def test_what_does_not_fit_is_refused_before_loading(tmp_path, wan22, tiny_pair, case):
    """Image-to-video experts (36 input channels), TI2V-5B's per-token timesteps and its 48-channel VAE: refused
    from config.json / model_index.json alone, exit 3 with one line."""
    edits = {
        "i2v-beside-1.3b": {"transformer_2/config.json": {"in_channels": 36}},
        "i2v-experts": {"transformer/config.json": {"in_channels": 36},
                        "transformer_2/config.json": {"in_channels": 36}},
        "ti2v": {"model_index.json": {"expand_timesteps": True}},
        "ti2v-vae-beside-1.3b": {"transformer/config.json": {"in_channels": 48, "out_channels": 48},
                                 "transformer_2/config.json": {"in_channels": 48, "out_channels": 48},
                                 "vae/config.json": {"z_dim": 48}},
    }[case]  # fmt: skip
    repo = copy_repo(wan22, tmp_path / case, edits)
    small = {"S": str(tiny_pair["small"])} if "1.3b" in case else {}
    schedule = "HSL" if small else "HL"
    path = write(tmp_path, {**experts(repo), **small}, schedule=schedule, boundaries=[0.4, 0.8][: len(schedule) - 1])
    message = {"i2v-beside-1.3b": "cannot share a latent space: in_channels is 16 vs 36",
               "i2v-experts": "takes in_channels 36 but the VAE .* makes 16-channel latents",
               "ti2v": "sets expand_timesteps",
               "ti2v-vae-beside-1.3b": "cannot share a latent space"}[case]  # fmt: skip
    with pytest.raises(ModelError, match=message):
        Sources.open(load_config(path))
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 3 and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("models", ["HSL", "HLSL", "HSHL", "LSL", "HSLMH", "SSS"])
def test_idle_never_holds_more_than_two_models(models):
    """`idle`'s own hook, with stand-ins for the pinned copies that record where each model is: at every step the
    running model is active on the GPU, the next stage's is at most being prefetched, and nothing else is there."""
    plan = [m for m in models for _ in range(3)]
    on_gpu: dict[str, str] = {}

    class Pinned:  # the interface `Residency` drives: prefetch, activate, release
        def __init__(self, name):
            self.name = name

        def prefetch(self, device, stream):
            on_gpu.setdefault(self.name, "prefetched")

        def activate(self, device, stream):
            on_gpu[self.name] = "active"

        def release(self):
            on_gpu.pop(self.name, None)

    residency = Residency({}, "idle", torch.device("cpu"))
    residency._pinned = {m: Pinned(m) for m in dict.fromkeys(models)}
    place = residency.hook(plan)
    for i, model in enumerate(plan):
        place(i, model)
        upcoming = next((m for m in plan[i:] if m != model), None)
        assert on_gpu[model] == "active" and len(on_gpu) <= 2, (i, on_gpu)
        assert set(on_gpu) <= {model, upcoming} and (upcoming is None or upcoming in on_gpu)
    residency.finish()
    assert set(on_gpu) <= {plan[0]}  # between videos only the first stage's model may stay


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_idle_three_transformers_on_the_gpu_at_most_two(tiny_pair):
    from fbgen.apps.tiny import LARGE, tiny_transformer

    models = {m: tiny_transformer(**LARGE) for m in "HSL"}
    residency = Residency(models, "idle", torch.device("cuda"))
    plan = list("HHHSSSSLLL")
    place = residency.hook(plan)
    for i, m in enumerate(plan):
        place(i, m)
        torch.cuda.synchronize()
        on_gpu = {k for k, model in models.items() if next(model.parameters()).is_cuda}
        assert m in on_gpu and len(on_gpu) <= 2, (i, on_gpu)
    residency.close()


def test_plan_shows_three_models_flops_and_the_idle_peak(tmp_path, wan22, tiny_pair):
    models = {**experts(wan22), "S": str(tiny_pair["small"])}
    path = write(tmp_path, models, schedule="HSL", steps=10, offload="idle")
    result = CliRunner().invoke(app, ["plan", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert "".join(s["model"] for s in data["plan"]) == "HHHHSSSSLL"
    per_forward = data["flops"]["per_forward"]
    assert per_forward["H"] == per_forward["L"] > per_forward["S"]
    assert [s["flops"] for s in data["plan"]] == [2 * per_forward[s["model"]] for s in data["plan"]]  # CFG: 2
    memory = data["memory"]
    sizes = memory["weights"]
    assert memory["peaks"]["idle"]["denoise"] - memory["activations"] == sizes["H"] + sizes["S"] < sum(sizes.values())
    assert any("at most two transformers" in line for line in memory["lines"])
    assert data["experts"] == {"high_noise": "H", "low_noise": "L", "boundary_ratio": 0.875}
    text = " ".join(CliRunner().invoke(app, ["plan", str(path)]).output.split())  # unwrapped
    assert "boundary_ratio 0.875" in text and "H+S at step 4" in text


def test_calibrate_measures_the_small_model_against_whichever_expert_runs(tmp_path, wan22):
    """The small model here is a copy of the low-noise expert (another repository, so not an expert itself): along
    the experts' switched trajectory it diverges exactly nowhere the low-noise expert runs and somewhere the
    high-noise one does."""
    twin = copy_repo(wan22, tmp_path / "twin")
    models = {**experts(wan22), "S": {"id": str(twin), "subfolder": "transformer_2"}}
    path = write(tmp_path, models, schedule="HL", steps=10, guidance_scale={"H": 4.0, "S": 3.0, "L": 3.0})
    config = load_config(path)
    assert roles(config) == ("HL", "S")
    engine = Engine.open(load_config(path, ["boundaries=[]"], schedule="HSL"))  # as `fbgen calibrate` loads
    result = calibrate(engine, [Item("p1", PROMPT, 0, None)], tmp_path / "cal")
    reference = result["reference_models"]
    assert reference == ["H"] * reference.count("H") + ["L"] * reference.count("L") and "L" in reference
    divergence = result["per_step"]["rel_l2_guided"]["mean"]
    assert all(d < 1e-6 for d, m in zip(divergence, reference) if m == "L")
    assert all(d > 1e-3 for d, m in zip(divergence, reference) if m == "H")
    assert result["reference"] == "HL" and result["boundaries"]["steps"]
    snippet = yaml.safe_load((tmp_path / "cal" / "calibration-snippet.yaml").read_text())
    suggested = validate({"models": models, "prompt": "x", "steps": 10, **snippet})
    assert set(suggested.schedule) == {"H", "S", "L"} and suggested.boundary_unit == "sigma"


def test_compare_runs_stock_against_the_three_model_schedule(tmp_path, wan22, tiny_pair):
    models = {**experts(wan22), "S": str(tiny_pair["small"])}
    path = write(tmp_path, models, schedule="HL", steps=6, guidance_scale={"H": 4.0, "S": 5.0, "L": 3.0})
    config = load_config(path, ["boundaries=[]"], schedule="HSL")  # as `fbgen compare` loads: all three
    specs = run_specs(config, ["HL", "HSL"], {})
    assert [(s.name, s.boundaries) for s in specs] == [("HL", ()), ("HSL", (0.4, 0.8))]
    report = compare(Engine.open(config), [Item("p1", PROMPT, 0, 3)], specs, tmp_path / "cmp")
    runs = {r["run"]: r for r in report["runs"]}
    assert report["reference"] == "HL" and set(runs) == {"HL", "HSL"}
    assert runs["HL"]["flops_vs_reference"] == 1.0 and runs["HSL"]["flops_vs_reference"] < 1.0
    result = CliRunner().invoke(app, ["compare", str(path), "--schedules", "HL,HSL", "--out", str(tmp_path / "c2"),
                                      "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "c2" / "report.json").read_text())["reference"] == "HL"
