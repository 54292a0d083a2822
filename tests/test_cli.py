"""`fbgen run` / `fbgen plan` end to end, through the installed command, on tiny models."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fbgen.apps.tiny import SMALL, tiny_transformer
from fbgen.outputs.checksums import file_sha256
from fbgen.outputs.video import read_mp4


def fbgen(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fbgen", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kwargs)  # fmt: skip


def cli(*args) -> subprocess.CompletedProcess:
    """The same command in-process (typer's runner): what a subprocess would see, without its ~8 s of imports."""
    from typer.testing import CliRunner

    from fbgen.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")) if path.exists() else []


def test_run_writes_mp4_and_manifest(write_config, tmp_path, tiny_pair):
    config = write_config(prompts=["a red cat runs left", "a blue ball rolls down"], fps=12)
    result = fbgen("run", config, "--json", "--set", "seed=7")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    assert len(items) == 2
    for item in items:
        mp4, manifest = Path(item["output"]), Path(item["manifest"])
        assert mp4.parent == tmp_path / "out" and mp4.name.endswith("-7-LSL-2-5-n6.mp4")
        frames, meta = read_mp4(mp4)
        assert frames.shape == (5, 32, 48, 3)
        assert meta["codec"].startswith("h264") and meta["pix_fmt"].startswith("yuv420p") and meta["fps"] == 12
        record = json.loads(manifest.read_text())
        assert record["sha256"] == file_sha256(mp4) == item["sha256"]
        assert [p["model"] for p in record["plan"]] == list("LLSSSL")
        assert record["plan"][0]["sigma"] == pytest.approx(1.0, abs=1e-5) and record["plan"][0]["timestep"] == 999.0
        assert [(s["model"], s["start"], s["end"]) for s in record["stages"]] == [("L", 0, 2), ("S", 2, 5), ("L", 5, 6)]
        assert sum(s["flops"] for s in record["stages"]) == record["flops"]["total"]
        assert record["flops"]["ratio"] == record["flops"]["total"] / record["flops"]["large_only"] < 1
        assert record["models"]["L"]["sha256"] and record["models"]["S"]["sha256"]
        assert record["models"]["L"]["sha256"] != record["models"]["S"]["sha256"]
        assert record["seed"] == 7 and record["generator_device"] == "cpu"
        for key in ("load", "encode", "denoise", "decode", "write", "total"):
            assert record["wall_s"][key] >= 0
        for key in ("fbgen_version", "created", "negative_prompt", "family", "schedule", "boundaries", "steps",
                    "height", "width", "num_frames", "fps", "output", "peak_memory_bytes", "device", "gpu_name",
                    "dtype", "versions", "config"):  # fmt: skip
            assert key in record
        assert set(record["versions"]) >= {"fbgen", "torch", "diffusers", "transformers", "cuda"}
    assert not [p for p in files_under(tmp_path / "out") if p.name.startswith(".")]


def test_same_seed_same_video_and_schedule_in_the_name(write_config):
    first = json.loads(fbgen("run", write_config(), "--json").stdout)["items"][0]  # one real process
    again = json.loads(cli("run", write_config(), "--json").stdout)["items"][0]
    lll = json.loads(cli("run", write_config(), "--json", "--schedule", "LLL").stdout)["items"][0]
    assert first["sha256"] == again["sha256"]
    assert "LLL-n6" in lll["output"] and lll["output"] != first["output"] and lll["flops_ratio"] == 1.0
    sss = json.loads(cli("run", write_config(), "--json", "--schedule", "SSS").stdout)["items"][0]
    assert 0 < sss["flops_ratio"] < first["flops_ratio"] < 1  # large-only is priced with L even when L is unused


@pytest.mark.parametrize(
    "overrides, code, message",
    [
        (["stepz=3"], 2, "--set stepz: unknown key; did you mean 'steps'?"),
        (["num_frames=6"], 2, "4k+1 frames"),
        (["width=40"], 2, "divisible by 16"),
        (["boundaries=[0.9,0.2]"], 2, "not decrease"),
        (["schedule=LML"], 2, "name no model"),
        (["output_dir=/proc/forbidden"], 2, "output_dir"),
        (["models.S=/no/such/model"], 3, "neither a local directory nor a hub id"),
        (["models.S=Wan-AI/not-in-the-cache"], 3, "HF_HUB_OFFLINE is set"),
    ],
)
def test_bad_input_one_line_exit_code_nothing_written(write_config, tmp_path, overrides, code, message):
    config = write_config()
    args = [a for o in overrides for a in ("--set", o)]
    result = cli("run", config, *args)
    assert result.returncode == code
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(write_config):
    result = cli("run", write_config(), "--set", "models.S=/no/such", "--debug")
    assert result.returncode == 3 and "Traceback" in result.stderr


def test_incompatible_pair_refused_before_weights_load(write_config, tmp_path, tiny_pair):
    other = tmp_path / "other"
    tiny_transformer(**SMALL, patch_size=(1, 1, 1)).save_pretrained(other / "transformer")
    (other / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")  # never read
    result = cli("run", write_config(models={"L": str(tiny_pair["large"]), "S": str(other)}))
    assert result.returncode == 3
    assert "cannot share a latent space: patch_size is [1, 2, 2] vs [1, 1, 1]" in result.stderr


def test_missing_or_pickle_only_weights_exit_3(write_config, tmp_path, tiny_pair):
    other = tmp_path / "pickled"
    model = tiny_transformer(**SMALL)
    model.save_pretrained(other / "transformer", safe_serialization=False)  # .bin only: never loaded
    result = cli("run", write_config(models={"L": str(tiny_pair["large"]), "S": str(other)}))
    assert result.returncode == 3 and "cannot load models" in result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.mp4"))


def test_sigterm_exits_130_and_leaves_no_partial_file(write_config, tmp_path):
    config = write_config(steps=400, height=64, width=64)
    proc = subprocess.Popen([sys.executable, "-m", "fbgen", "run", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines = [proc.stdout.readline() for _ in range(3)]  # loading, encoding, item start: denoising begins
    assert "loading" in lines[0] and "400 steps" in lines[2]
    assert "stage L steps 0-159 done" in proc.stdout.readline()  # mid-denoising: 240 steps still to go
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not list((tmp_path / "out").glob("*.mp4")) and not list((tmp_path / "out").glob("*.json"))
    assert not [p for p in files_under(tmp_path / "out") if ".partial" in p.name]


def test_plan_loads_no_weights(write_config, tiny_pair, monkeypatch):
    from diffusers import ModelMixin
    from typer.testing import CliRunner

    from fbgen.cli import app

    def refuse(*args, **kwargs):
        raise AssertionError("plan must not load weights")

    monkeypatch.setattr(ModelMixin, "from_pretrained", classmethod(refuse))
    result = CliRunner().invoke(app, ["plan", str(write_config(steps=10)), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [s["model"] for s in data["plan"]] == list("LLLLSSSSLL")
    assert data["flops"]["ratio"] < 1 and data["memory"]["weights"]["L"] > data["memory"]["weights"]["S"]
    table = CliRunner().invoke(app, ["plan", str(write_config(steps=10))])
    assert table.exit_code == 0 and "large-only" in table.output and "saving" in table.output


def test_version_help_and_quiet(write_config):
    assert fbgen("--version").stdout.startswith("fbgen ")
    assert "Example: fbgen run" in fbgen("run", "--help").stdout
    quiet = fbgen("run", write_config(), "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == ""
    logged = fbgen("run", write_config())
    assert "stage S steps 2-4 done" in logged.stdout and "\x1b[" not in logged.stdout


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("fbgen")
    assert exe.exists() and os.access(exe, os.X_OK)


def test_plan_at_full_wan_size_from_configs_alone(tmp_path):
    """The real 14B/1.3B configs (no weights anywhere): plan gives the published per-forward FLOPs."""
    from test_flops import WAN_1_3B, WAN_14B

    for name, cfg in (("14b", WAN_14B), ("1.3b", WAN_1_3B)):
        root = tmp_path / name
        for sub, data in (("transformer", {**cfg, "_class_name": "WanTransformer3DModel"}),
                          ("vae", {"scale_factor_temporal": 4, "scale_factor_spatial": 8}),
                          ("text_encoder", {}), ("tokenizer", {})):  # fmt: skip
            (root / sub).mkdir(parents=True)
            file = "tokenizer_config.json" if sub == "tokenizer" else "config.json"
            (root / sub / file).write_text(json.dumps(data))
    config = Path(__file__).parents[1] / "configs" / "wan2.1-14b-1.3b-lsl.yaml"
    result = fbgen("plan", config, "--json", "--set", f"models.L={tmp_path / '14b'}",
                   "--set", f"models.S={tmp_path / '1.3b'}", "--set", "device=cpu")  # fmt: skip
    assert result.returncode == 0, result.stderr
    flops = json.loads(result.stdout)["flops"]
    assert flops["per_forward"]["L"] / 1e12 == pytest.approx(1678, rel=0.01)
    assert flops["per_forward"]["S"] / 1e12 == pytest.approx(283, rel=0.01)
    assert flops["ratio"] == pytest.approx(0.6 + 0.4 * flops["per_forward"]["S"] / flops["per_forward"]["L"])
