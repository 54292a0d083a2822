"""The CLI as thin shells: a closed stdout pipe loses nothing, the version is the package's own, help shows no
`<bool>` for flags, eval pairs videos by their manifests, summaries name where things went."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fbgen

ROOT = Path(__file__).resolve().parent.parent


def fbgen_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fbgen", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)  # fmt: skip


def test_a_closed_stdout_pipe_never_stops_rendering(write_config, tmp_path):
    path = write_config(prompts=["a red cat", "a blue dog", "a green bird"], steps=2)
    shell = f"{sys.executable} -m fbgen run {path} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}"
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "0", result.stderr
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 3 and len(list((tmp_path / "out").glob("*.json"))) == 3
    assert "BrokenPipe" not in result.stderr


def test_the_version_survives_a_same_named_folder_next_to_a_script(tmp_path):
    (tmp_path / "fbgen").mkdir()  # e.g. an output folder called fbgen beside the user's script
    (tmp_path / "fbgen.egg-info").mkdir()
    (tmp_path / "fbgen.egg-info" / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: fbgen\nVersion: 9.9.9\n")
    script = tmp_path / "show.py"
    script.write_text("import fbgen\nprint(fbgen.__version__)\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.stdout.strip() == fbgen.__version__, result.stderr
    assert fbgen_cli("--version").stdout.strip() == f"fbgen {fbgen.__version__}"


COMMANDS = ("run", "batch", "status", "calibrate", "compare", "eval", "plan", "decode", "train-demo")


def help_text(command: str) -> str:
    from typer.testing import CliRunner

    from fbgen.cli import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_bool_metavar_for_flags(command):
    text = help_text(command)
    for line in text.splitlines():
        if "--help" not in line:
            assert "<bool>" not in line, line
    assert "Example: fbgen" in text


def test_readme_says_which_options_each_command_takes():
    """Every `--option` the README shows with a command is one that command accepts."""
    import re

    readme = (ROOT / "README.md").read_text()
    for command in COMMANDS:
        options = help_text(command)
        for line in re.findall(rf"fbgen {command} [^\n`]*", readme):
            for option in re.findall(r"(--[a-z][a-z-]*)", line):
                assert option in options, f"README: `{line}` uses {option}, which fbgen {command} does not take"


def test_eval_pairs_videos_by_their_manifests(write_config, tmp_path):
    from fbgen.config import load_config
    from fbgen.engine.engine import Engine
    from fbgen.engine.job import config_jobs

    base = load_config(write_config(steps=3, prompts=["a red cat", "a blue dog"]))
    engine = Engine.open(base)
    for schedule in ("LLL", "LSL"):
        engine.run([j.changed(schedule=schedule, output_dir=str(tmp_path / schedule.lower()))
                    for j in config_jobs(base)])  # fmt: skip
    names = {p.name for p in (tmp_path / "lsl").glob("*.mp4")}
    assert not names & {p.name for p in (tmp_path / "lll").glob("*.mp4")}  # default names differ by schedule
    from typer.testing import CliRunner

    from fbgen.cli import app

    result = CliRunner().invoke(app, ["eval", str(tmp_path / "lsl"), "--reference", str(tmp_path / "lll"), "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)["items"]
    assert len(items) == 2
    for item in items:  # each LSL video against the LLL video of its own prompt and seed
        video, reference = (json.loads(Path(item[k]).with_suffix(".json").read_text()) for k in ("video", "reference"))
        assert (video["prompt"], video["seed"]) == (reference["prompt"], reference["seed"])


def test_the_run_summary_names_the_output_folder_and_manifests(write_config, tmp_path):
    from typer.testing import CliRunner

    from fbgen.cli import app

    result = CliRunner().invoke(app, ["run", str(write_config(steps=2))])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "out") in result.output and ".json" in result.output
    data = json.loads(CliRunner().invoke(app, ["run", str(write_config(steps=2, seed=1)), "--json"]).output)
    assert data["output_dir"] == str(tmp_path / "out") and data["items"][0]["manifest"].endswith(".json")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_devices_without_cuda_are_refused_like_all(write_config, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red cat\n")
    from typer.testing import CliRunner

    from fbgen.cli import app

    for devices in ("all", "0,1"):
        args = ["batch", str(prompts), "--config", str(write_config(device="auto")), "--devices", devices]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "no CUDA device is visible" in result.output, result.output
    assert not (tmp_path / "out").exists()
