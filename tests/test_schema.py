"""One config schema: the README's reference, the load-time/per-job split and every number's range come from one
declaration; validation is pure; bad values anywhere are one line, exit 2."""

import math
import re
from dataclasses import fields
from pathlib import Path

import pytest

from fbgen.config import RunConfig, keys, load_config, validate
from fbgen.config.loading import parse_yaml
from fbgen.config.schema import reference_markdown
from fbgen.core.errors import BadInput
from fbgen.engine.job import Job

ROOT = Path(__file__).resolve().parent.parent


class Result:
    def __init__(self, code: int, output: str):
        self.returncode, self.stderr = code, output


def fbgen(*args, env=None):
    """The CLI in-process (the same Typer app; exit code and output as a shell sees them)."""
    from typer.testing import CliRunner

    from fbgen.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    return Result(result.exit_code, result.output)


def test_readme_config_reference_is_the_declaration():
    readme = (ROOT / "README.md").read_text()
    assert reference_markdown() in readme, "regenerate with: python -m fbgen.config.schema >> README section"


def test_load_time_and_per_job_keys_partition_the_config_and_a_job_has_every_per_job_key():
    load, job = set(keys("load")), set(keys("job"))
    assert load | job == set(keys()) and not load & job
    assert {"models", "offload", "lora", "cache", "attention_backend", "compile", "dtype", "device"} <= load
    assert {"seed", "height", "schedule", "boundaries", "steps", "guidance_scale", "max_sequence_length"} <= job
    job_fields = {f.name for f in fields(Job)}
    assert job - {"prompts"} <= job_fields  # a job carries every per-video key (one prompt instead of a list)
    assert {f.name for f in fields(RunConfig)} - {"source", "expert_switch"} == set(keys())  # read, not keys


NUMBERS = ["steps", "seed", "height", "width", "num_frames", "fps", "shift", "guidance_scale", "max_sequence_length",
           "crf", "boundaries", "guidance_scale.L", "cache.threshold", "lora.S.scale"]  # fmt: skip


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", NUMBERS)
def test_nan_and_inf_are_refused_everywhere(write_config, tiny_pair, name, bad):
    data = {"guidance_scale": {"L": 5.0, "S": 5.0}} if name == "guidance_scale.L" else {}
    if name == "guidance_scale.L":
        data["guidance_scale"]["L"] = bad
    elif name == "cache.threshold":
        data["cache"] = {"type": "first_block", "threshold": bad}
    elif name == "lora.S.scale":
        data["lora"] = {"S": {"path": str(tiny_pair["small"]), "scale": bad}}
    elif name == "boundaries":
        data["boundaries"] = [0.4, bad]
    else:
        data[name] = bad
    with pytest.raises(BadInput) as e:
        load_config(write_config(**data))
    assert name.split(".")[0] in str(e.value) and len(str(e.value).splitlines()) == 1


@pytest.mark.parametrize("name, value, message", [
    ("seed", -1, "must be >= 0"), ("seed", 2**64, "must be <= 18446744073709551615"),
    ("steps", 0, "must be >= 1"), ("steps", 10**6, "must be <= 1000"), ("fps", 0, "must be >= 1"),
    ("shift", 0, "must be > 0"), ("guidance_scale", -1, "must be >= 0"), ("crf", 52, "must be <= 51"),
    ("max_sequence_length", 0, "must be >= 1"), ("outputs", ["gif"], "a list of mp4, png, latents"),
    ("filename", "{seed:q}", "not a valid template"), ("filename", "{seed.real}", "unknown field"),
    ("filename", "{}", "unknown field"), ("filename", "a/{id}", "not a plain file name"),
    ("models", {"L": {"id": "x", "subfolder": "../up"}}, "expected a folder name"),
    ("device", "cuda:x", "must be auto, cpu, cuda or cuda:N"),
])  # fmt: skip
def test_ranges_and_templates_are_checked_before_loading(write_config, name, value, message):
    with pytest.raises(BadInput, match=re.escape(message)):
        load_config(write_config(**{name: value}))


def test_a_long_bad_value_is_quoted_short(write_config):
    with pytest.raises(BadInput) as e:
        load_config(write_config(steps="x" * 5000))
    assert len(str(e.value)) < 200 and "..." in str(e.value)


def test_validation_is_pure_and_the_preflight_probes(write_config):
    """`device: cuda` validates on a machine without CUDA (fbgen plan works there); loading refuses it, exit 2."""
    config = load_config(write_config(device="cuda"))
    assert config.device == "cuda"
    import torch

    if not torch.cuda.is_available():
        run = fbgen("run", write_config(device="cuda"))
        assert run.returncode == 2 and "CUDA is not available" in run.stderr
        plan = fbgen("plan", write_config(device="cuda"), "--json")
        assert plan.returncode == 0, plan.stderr


def test_an_unwritable_output_dir_is_refused_before_loading(write_config):
    result = fbgen("run", write_config(output_dir="/dev/null/out"))
    assert result.returncode == 2 and "key 'output_dir': /dev/null/out is not writable" in result.stderr


def test_duplicate_keys_and_alias_bombs_are_refused(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("steps: 10\nprompt: a\nsteps: 20\n")
    with pytest.raises(BadInput, match=r"line 3: key 'steps' is given twice \(also line 1\)"):
        load_config(dup)
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 6)]
    bomb.write_text("\n".join(lines) + "\nprompt: *a5\n")
    with pytest.raises(BadInput, match="expands to more than"):
        load_config(bomb)


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("prompt: caf\u00e9\n".encode("latin-1"))
    result = fbgen("run", path)
    assert result.returncode == 2 and "not UTF-8" in result.stderr and "Traceback" not in result.stderr


def test_per_job_changes_are_checked_and_load_time_ones_refused(write_config):
    job = Job.of(load_config(write_config()))
    assert job.changed(steps=8).steps == 8
    with pytest.raises(BadInput, match="key 'steps': must be >= 1"):
        job.changed(steps=0)
    with pytest.raises(BadInput, match="cache cannot change per video"):
        job.changed(cache={"type": "first_block"})


def test_bad_launcher_variables_are_bad_input(write_config, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\n")
    env = {"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "two"}
    result = fbgen("batch", prompts, "--config", write_config(), env=env)
    assert result.returncode == 2 and "WORLD_SIZE='two'" in result.stderr


def test_a_malformed_model_config_is_a_model_error(write_config, tiny_pair, tmp_path):
    import shutil

    for text, message in (("{not json", "transformer: cannot read config.json"), ('{"in_channels": 16}', "lacks")):
        broken = tmp_path / "broken"
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(tiny_pair["small"], broken)
        (broken / "transformer" / "config.json").write_text(text)
        result = fbgen("plan", write_config(models={"L": str(tiny_pair["large"]), "S": str(broken)}))
        assert result.returncode == 3 and message in result.stderr, result.stderr


def test_every_shipped_config_validates_offline():
    """Validation is pure, so the shipped configs (hub ids, CUDA) validate on this machine without hub or GPU; the
    one fact read from a checkpoint (Wan 2.2's boundary_ratio, for the stock two-expert run) is given here."""
    paths = {p.name: p for p in sorted((ROOT / "configs").glob("*.yaml"))}
    assert len(paths) >= 9
    configs = {name: validate(parse_yaml(path.read_text(), str(path)), str(path), read_switch=lambda ref: 0.875)
               for name, path in paths.items()}  # fmt: skip
    for name, config in configs.items():
        assert config.models and config.prompts, name
    assert configs["wan2.1-14b-1.3b-lsl.yaml"].schedule == "LSL" and configs["wan2.1-14b-lll.yaml"].schedule == "LLL"
    stock = configs["wan2.2-a14b-stock.yaml"]
    assert (stock.schedule, stock.boundaries, stock.boundary_unit) == ("HL", (0.875,), "sigma")
    assert configs["wan2.2-a14b-1.3b-hsl.yaml"].schedule == "HSL"
    # without the hub or its cache, the switch comes from fbgen's shipped copy of the A14B's model_index.json
    assert load_config(paths["wan2.2-a14b-stock.yaml"]).boundaries == (0.875,)
