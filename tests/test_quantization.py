"""Quantized models per letter through diffusers' own quantization: torchao int8 on tiny components, and a GGUF
file (Q8_0, written here in the original Wan key layout the community files use) with its repository's config; each
LLL equals diffusers' pipeline with the same quantization; what this machine cannot run is one line before loading."""

import json

import numpy as np
import pytest
import torch
from diffusers import GGUFQuantizationConfig, TorchAoConfig, WanPipeline, WanTransformer3DModel
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from engines import denoised_latents, yaml_config

from fbgen.config import load_config, validate
from fbgen.core.errors import BadInput
from fbgen.core.solvers import make_scheduler
from fbgen.engine.engine import Engine
from fbgen.engine.job import Job
from fbgen.engine.preflight import preflight

pytest.importorskip("torchao")
gguf = pytest.importorskip("gguf")

PROMPT = "a red cat runs left"
SETTINGS = dict(height=32, width=48, num_frames=5, num_inference_steps=4, guidance_scale=5.0)


def write(tmp_path, **keys):
    data = {"family": "wan", "schedule": "LLL", "steps": 4, "height": 32, "width": 48, "num_frames": 5,
            "prompt": PROMPT, "device": "cpu", "output_dir": str(tmp_path / "out"), **keys}  # fmt: skip
    return load_config(yaml_config(tmp_path / "run.yaml", data))


def pipeline_latents(root, transformer, dtype, seed=0):
    pipe = WanPipeline.from_pretrained(root, transformer=transformer, torch_dtype=dtype, use_safetensors=True)
    pipe.scheduler = make_scheduler("unipc", 3.0)
    return pipe(prompt=PROMPT, negative_prompt="", generator=torch.Generator("cpu").manual_seed(seed),
                output_type="latent", **SETTINGS).frames  # fmt: skip


def test_int8_weight_only_equals_diffusers_with_the_same_torchao_config(tmp_path, tiny_pair):
    from torchao.quantization import Int8WeightOnlyConfig

    root = tiny_pair["large"]
    config = write(tmp_path, models={"L": str(root), "S": str(tiny_pair["small"])}, dtype="bfloat16",
                   quantization={"L": "int8_weight_only"})  # fmt: skip
    assert config.quantization == {"L": "int8_weight_only"}
    engine, ours = denoised_latents(config)
    weight = engine.family.transformers["L"].blocks[0].ffn.net[0].proj.weight
    assert "Int8" in type(weight).__name__  # really quantized
    reference = WanTransformer3DModel.from_pretrained(root, subfolder="transformer", torch_dtype=torch.bfloat16,
                                                      quantization_config=TorchAoConfig(Int8WeightOnlyConfig()))
    torch.testing.assert_close(ours, pipeline_latents(root, reference, torch.bfloat16), rtol=1e-5, atol=1e-5)
    plain = denoised_latents(write(tmp_path, models={"L": str(root)}, dtype="bfloat16"))[1]
    assert not torch.allclose(ours, plain, atol=1e-4)  # the quantization changed the result: it ran
    record = engine.render(Job.of(config))
    assert record["models"]["L"]["quantization"] == {"method": "torchao", "type": "int8_weight_only"}


def to_original_wan_keys(state: dict) -> dict:
    """diffusers' WanTransformer3DModel keys → the original Wan layout community GGUF files use (the inverse of
    diffusers' `convert_wan_transformer_to_diffusers`, checked against it below)."""
    renames = [("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
               ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
               ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
               ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
               ("condition_embedder.time_proj", "time_projection.1"), ("attn1", "self_attn"), ("attn2", "cross_attn"),
               (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
               ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"), ("proj_out", "head.head"),
               (".norm2.", ".norm3."), (".scale_shift_table", ".modulation")]  # fmt: skip
    out = {}
    for key, value in state.items():
        new = "head.modulation" if key == "scale_shift_table" else key
        for a, b in renames:
            new = new.replace(a, b)
        out[new] = value
    return out


def write_gguf(model: torch.nn.Module, path) -> None:
    """The model's weights as a GGUF file: 2-D weights whose rows split into 32-value blocks as Q8_0, the rest F32."""
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    original = to_original_wan_keys(state)
    assert set(convert_wan_transformer_to_diffusers(dict(original))) == set(state)  # the inverse is right
    writer = gguf.GGUFWriter(str(path), "wan")
    for name, array in original.items():
        if array.ndim == 2 and array.shape[1] % 32 == 0:
            writer.add_tensor(name, gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # fmt: skip
        else:
            writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_gguf_file_with_its_repository_config_equals_diffusers_single_file_loading(tmp_path, tiny_pair):
    root = tiny_pair["large"]
    file = tmp_path / "wan-tiny-Q8_0.gguf"
    write_gguf(WanTransformer3DModel.from_pretrained(root, subfolder="transformer"), file)
    config = write(tmp_path, models={"L": {"id": str(root), "file": str(file)}}, quantization="int8_weight_only")
    assert config.quantization == {}  # a string for all models leaves the GGUF one as it is
    engine, ours = denoised_latents(config)
    reference = WanTransformer3DModel.from_single_file(
        str(file), config=str(root), subfolder="transformer", torch_dtype=torch.float32,
        quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32))  # fmt: skip
    assert any(type(p).__name__ == "GGUFParameter" for p in reference.parameters())
    torch.testing.assert_close(ours, pipeline_latents(root, reference, torch.float32), rtol=1e-5, atol=1e-6)
    record = engine.render(Job.of(config))
    import hashlib

    assert record["models"]["L"]["quantization"] == {
        "method": "gguf", "file": str(file), "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}  # fmt: skip
    from typer.testing import CliRunner

    from fbgen.cli import app

    plan = CliRunner().invoke(app, ["plan", str(tmp_path / "run.yaml"), "--json"])  # a plan weighs the file
    assert plan.exit_code == 0 and json.loads(plan.stdout)["memory"]["weights"]["L"] == file.stat().st_size
    with pytest.raises(Exception, match="does not exist"):
        Engine.open(write(tmp_path, models={"L": {"id": str(root), "file": str(tmp_path / "missing.gguf")}}))


@pytest.mark.parametrize("raw, message", [
    ({"quantization": "float8_dynamic"}, "float8_dynamic runs on CUDA GPUs only"),
    ({"quantization": {"L": "int4_weight_only"}}, "int4_weight_only runs on CUDA GPUs only"),
])  # fmt: skip
def test_what_this_machine_cannot_run_is_one_line_before_loading(raw, message):
    config = validate({"models": {"L": "x"}, "prompt": "x", "device": "cpu", **raw})
    with pytest.raises(BadInput, match=message):
        preflight(config)


@pytest.mark.parametrize("raw, message", [
    ({"quantization": "int3"}, "key 'quantization.L': must be one of none, auto, int8_weight_only"),
    ({"quantization": {"Q": "int8_weight_only"}}, "key 'quantization.Q': names no model"),
    ({"models": {"L": {"id": "x", "file": "w.safetensors"}}}, "key 'models.L.file': expected a GGUF file"),
    ({"models": {"L": {"id": "x", "file": "w.gguf"}}, "quantization": {"L": "int8_weight_only"}},
     "is a GGUF file, quantized already"),
    ({"memory_budget": "lots"}, "key 'memory_budget': expected a size such as 24GiB"),
])  # fmt: skip
def test_bad_quantization_keys_are_one_line(raw, message):
    with pytest.raises(BadInput, match=message):
        validate({"models": {"L": "x"}, "prompt": "x", **raw})


def test_memory_budget_units():
    sizes = {"24GiB": 24 * 2**30, "16GB": 16 * 10**9, "1.5 GiB": int(1.5 * 2**30), 1000: 1000}
    for text, size in sizes.items():
        assert validate({"models": {"L": "x"}, "prompt": "x", "memory_budget": text}).memory_budget == size
    assert json.dumps(validate({"models": {"L": "x"}, "prompt": "x"}).to_dict()["memory_budget"]) == "null"
