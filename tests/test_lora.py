"""A LoRA per model, through diffusers' own Wan LoRA loader: exact against WanPipeline.load_lora_weights."""


import pytest
import torch
from diffusers import WanPipeline, WanTransformer3DModel
from engines import run_config
from typer.testing import CliRunner

from fbgen.cli import app
from fbgen.config import load_config
from fbgen.core.solvers import make_scheduler
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job


@pytest.fixture(scope="module")
def lora_dir(tiny_pair, tmp_path_factory):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(1)
    model = WanTransformer3DModel.from_pretrained(tiny_pair["small"], subfolder="transformer")
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                 init_lora_weights=False))  # random A and B: the LoRA changes the output  # fmt: skip
    path = tmp_path_factory.mktemp("lora")
    WanPipeline.save_lora_weights(path, transformer_lora_layers=get_peft_model_state_dict(model))
    return path


def latents(write_config, **overrides):
    config = load_config(write_config(steps=4, **overrides))
    session = Engine.open(config)
    cond = session.encode([Job.of(config)])[0]
    return session.denoise(Job.of(config, seed=3), cond).latents


def test_lora_on_one_model_equals_diffusers_and_leaves_the_other_alone(write_config, tiny_pair, lora_dir):
    ours = latents(write_config, schedule="SSS", lora={"S": str(lora_dir)})
    pipe = WanPipeline.from_pretrained(tiny_pair["small"], use_safetensors=True)
    pipe.load_lora_weights(lora_dir)
    pipe.scheduler = make_scheduler("unipc", 3.0)
    theirs = pipe(prompt="a red cat runs left", negative_prompt="", height=32, width=48, num_frames=5,
                  num_inference_steps=4, guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(3),
                  output_type="latent").frames  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    plain = latents(write_config, schedule="SSS")
    assert not torch.allclose(ours, plain)
    half = latents(write_config, schedule="SSS", lora={"S": {"path": str(lora_dir), "scale": 0.5}})
    assert not torch.allclose(half, ours) and not torch.allclose(half, plain)
    # the same weights under L and S: a LoRA on S must not touch L
    same = {"L": str(tiny_pair["small"]), "S": str(tiny_pair["small"])}
    with_lora = latents(write_config, models=same, schedule="LLL", lora={"S": str(lora_dir)})
    torch.testing.assert_close(with_lora, latents(write_config, models=same, schedule="LLL"), rtol=0, atol=0)


def test_manifest_pins_the_lora_file(write_config, lora_dir):
    from fbgen.outputs.checksums import file_sha256

    config = load_config(write_config(steps=2, lora={"S": {"path": str(lora_dir), "scale": 0.7}}))
    record = run_config(config)[0]
    lora_file = lora_dir / "pytorch_lora_weights.safetensors"
    assert record["lora"] == {"S": {"path": str(lora_dir), "scale": 0.7, "weight_name": None, "fuse": False,
                                    "sha256": file_sha256(lora_file)}}  # fmt: skip


def test_fused_lora_equals_unfused_and_leaves_no_lora_layers(write_config, tiny_pair, lora_dir):
    from peft.tuners.tuners_utils import BaseTunerLayer

    spec = {"path": str(lora_dir), "scale": 0.5}
    unfused = latents(write_config, schedule="SSS", lora={"S": spec})
    config = load_config(write_config(steps=4, schedule="SSS", lora={"S": {**spec, "fuse": True}}))
    session = Engine.open(config)
    assert not any(isinstance(m, BaseTunerLayer) for t in session.family.transformers.values() for m in t.modules())
    cond = session.encode([Job.of(config)])[0]
    fused = session.denoise(Job.of(config, seed=3), cond).latents
    torch.testing.assert_close(fused, unfused, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(fused, latents(write_config, schedule="SSS"))  # the scaled update is in the weights
    # L's weights are untouched by S's fused LoRA (same checkpoint under both letters)
    same = {"L": str(tiny_pair["small"]), "S": str(tiny_pair["small"])}
    session = Engine.open(load_config(write_config(models=same, lora={"S": {**spec, "fuse": True}})))
    large, small = (dict(session.family.transformers[m].named_parameters()) for m in "LS")
    changed = [k for k in large if not torch.equal(large[k], small[k])]
    assert changed and all(".attn" in k for k in changed)


def test_missing_or_pickled_lora_exits_3(write_config, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save({"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 32)},
               pickled / "pytorch_lora_weights.bin")  # fmt: skip
    for path in (tmp_path / "missing", pickled):
        result = CliRunner().invoke(app, ["run", str(write_config(lora={"S": str(path)}))])  # in-process
        assert result.exit_code == 3 and "lora.S: cannot load" in result.stderr, result.stderr
