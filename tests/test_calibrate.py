"""Calibration on tiny models: divergence traces, outputs, per-prompt resume, the CLI."""

import json

import pytest
import yaml

from fbgen.apps.batch import read_prompts
from fbgen.apps.calibrate import calibrate, divergence
from fbgen.config import load_config, validate
from fbgen.engine.engine import Engine
from fbgen.engine.progress import NoProgress


def open_session(write_config, **overrides):
    return Engine.open(load_config(write_config(**overrides)))


def prompts_file(tmp_path, n=3):
    path = tmp_path / "p.txt"
    path.write_text("\n".join(f"a red cat number {i}" for i in range(n)) + "\n")
    return read_prompts(path)


def test_divergence_metrics():
    import torch

    a = torch.tensor([1.0, 0.0])
    assert divergence(a, a) == (pytest.approx(0.0), pytest.approx(0.0))
    assert divergence(a, torch.tensor([0.0, 1.0])) == (pytest.approx(1.0), pytest.approx(2**0.5))
    assert divergence(a, -a) == (pytest.approx(2.0), pytest.approx(2.0))


def test_identical_models_do_not_diverge(write_config, tiny_pair, tmp_path):
    same = {"L": str(tiny_pair["large"]), "S": str(tiny_pair["large"])}
    session = open_session(write_config, models=same, steps=8)
    result = calibrate(session, prompts_file(tmp_path, 2), tmp_path / "cal")
    assert all(v == pytest.approx(0.0, abs=1e-6) for m in result["per_step"].values() for v in m["mean"])
    assert result["boundaries"]["shape"] == "flat"


def test_outputs_and_snippet(write_config, tmp_path):
    session = open_session(write_config, steps=10)
    out = tmp_path / "cal"
    result = calibrate(session, prompts_file(tmp_path), out)
    saved = json.loads((out / "calibration.json").read_text())
    assert saved["boundaries"] == result["boundaries"] and len(saved["prompts"]) == 3
    for metric in ("rel_l2_guided", "cos_guided", "rel_l2_cond", "cos_cond"):
        assert len(saved["per_step"][metric]["mean"]) == 10 and min(saved["per_step"][metric]["mean"]) > 0
        assert all(s >= 0 for s in saved["per_step"][metric]["std"])
    assert (out / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "traces").glob("*.json"))) == 3
    snippet = yaml.safe_load((out / "calibration-snippet.yaml").read_text())
    config = validate({"models": {"L": "a", "S": "b"}, "prompt": "x", "steps": 10, **snippet})
    assert config.schedule == "LSL" and list(config.boundaries) == saved["boundaries"]["fractions"]


class StopAt(NoProgress):
    def __init__(self, index):
        self.index, self.started = index, []

    def item_start(self, index, total, name, plan):
        if index == self.index:
            raise KeyboardInterrupt
        self.started.append(name)


def test_interrupted_calibration_resumes_per_prompt(write_config, tmp_path):
    items = prompts_file(tmp_path)
    session = open_session(write_config, steps=6)
    reference = calibrate(session, items, tmp_path / "ref")

    out = tmp_path / "cal"
    session = open_session(write_config, steps=6)
    session.progress = StopAt(1)
    with pytest.raises(KeyboardInterrupt):
        calibrate(session, items, out)
    assert len(list((out / "traces").glob("*.json"))) == 1
    session = open_session(write_config, steps=6)
    session.progress = StopAt(-1)
    resumed = calibrate(session, items, out)
    assert session.progress.started == [items[1].id, items[2].id]  # only the missing prompts were traced
    assert resumed["per_step"] == reference["per_step"]
    session = open_session(write_config, steps=6, seed=5)
    session.progress = StopAt(-1)
    calibrate(session, items, out)
    assert len(session.progress.started) == 3  # another base seed: saved traces do not apply


def test_cli_calibrate(write_config, tmp_path):
    from typer.testing import CliRunner

    from fbgen.cli import app

    (tmp_path / "p.txt").write_text("a red cat\na blue dog\n")
    config = write_config(steps=6)
    cmd = ["calibrate", str(config), "--prompts", str(tmp_path / "p.txt")]
    result = CliRunner().invoke(app, [*cmd, "--json", "--out", str(tmp_path / "c")])  # in-process
    assert result.exit_code == 0, result.stderr
    assert set(json.loads(result.stdout)["boundaries"]["steps"]) <= set(range(6))
    bad = CliRunner().invoke(app, [*cmd[:-1], str(tmp_path / "missing.txt")])
    assert bad.exit_code == 2 and "missing.txt" in bad.stderr


def test_calibrate_runs_on_ltx(write_ltx_config, tmp_path):
    config = load_config(write_ltx_config(steps=4, fps=12))
    session = Engine.open(config)
    result = calibrate(session, prompts_file(tmp_path, 1), tmp_path / "cal")
    assert len(result["per_step"]["rel_l2_guided"]["mean"]) == 4 and min(result["per_step"]["cos_cond"]["mean"]) > 0
