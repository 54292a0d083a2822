"""Schedule comparison on tiny models: runs, fidelity, sweep criteria, sheets, side-by-side videos, the CLI."""

import json

import numpy as np
import pytest

from fbgen.apps.batch import Item
from fbgen.apps.compare import compare, criteria, parse_sweeps, run_specs
from fbgen.apps.fidelity import Embedder, pixel_fidelity
from fbgen.config import load_config
from fbgen.core.errors import BadInput
from fbgen.engine.engine import Engine
from fbgen.outputs.video import read_mp4


def test_specs_and_sweeps(write_config):
    config = load_config(write_config())
    specs = run_specs(config, ["SSS", "LSL", "LLL"], parse_sweeps(["early=0.2,0.3", "late=0.9"]))
    assert [s.name for s in specs] == ["LLL", "SSS", "LSL", "LSL[0.2,0.8]", "LSL[0.3,0.8]", "LSL[0.4,0.9]"]
    assert specs[3].boundaries == (0.2, 0.8) and specs[5].boundaries == (0.4, 0.9)
    for bad in (["early=0"], ["middle=0.3"], ["late=x"], ["early"]):
        with pytest.raises(BadInput, match="--sweep"):
            parse_sweeps(bad)
    with pytest.raises(BadInput, match="must come before"):
        run_specs(config, ["LSL"], parse_sweeps(["early=0.9"]))
    with pytest.raises(BadInput, match="needs 1 boundaries"):
        run_specs(config, ["LS"], {})


def test_criteria_follow_the_paper():
    def row(b, ssim, psnr, sweep="early"):
        return {"schedule": "LSL", "boundaries": list(b), "sweep": sweep, "ssim": ssim, "psnr": psnr}

    summary = [
        row((0.1, 0.8), 0.80, 20, "early"), row((0.2, 0.8), 0.93, 21, "early"), row((0.3, 0.8), 0.945, 22, "early"),
        row((0.4, 0.8), 0.95, 24, None),
        row((0.4, 0.6), 0.97, 27.0, "late"), row((0.4, 0.7), 0.96, 26.7, "late"), row((0.4, 0.9), 0.9, 22, "late"),
    ]  # fmt: skip
    c = criteria(summary, [], (0.4, 0.8))
    assert c["early"] == 0.3  # 0.2 loses more than 0.01 SSIM against the best (0.95 at 0.4)
    assert c["late"] == 0.7  # returning earlier than 0.7 gains < 0.5 dB


def test_pixel_fidelity():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    assert pixel_fidelity(a, a) == {"psnr": 100.0, "ssim": pytest.approx(1.0)}
    noisy = np.clip(a.astype(int) + rng.integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
    f = pixel_fidelity(noisy, a)
    assert 25 < f["psnr"] < 45 and 0 < f["ssim"] < 1


def test_compare_on_tiny_models(write_config, tiny_pair, tmp_path):
    # S given the large model's weights: LSL must reproduce LLL exactly, so fidelity is perfect
    same = load_config(write_config(models={"L": str(tiny_pair["large"]), "S": str(tiny_pair["large"])}, steps=5))
    report = compare(Engine.open(same), [Item("p1", "a red cat", 1, 3)], run_specs(same, ["LSL"], {}),
                     tmp_path / "same")  # fmt: skip
    assert [r["psnr"] for r in report["runs"]] == [100.0, 100.0]

    config = load_config(write_config(steps=5))
    items = [Item("p1", "a red cat", 1, 3), Item("p2", "a blue dog", 2, 4)]
    out = tmp_path / "cmp"
    report = compare(Engine.open(config), items, run_specs(config, ["SSS", "LSL"], parse_sweeps(["early=0.2"])), out)
    runs = {r["run"]: r for r in report["runs"]}
    assert runs["LLL"]["psnr"] == 100.0 and runs["LLL"]["flops_vs_reference"] == 1.0
    assert runs["SSS"]["flops_vs_reference"] < runs["LSL"]["flops_vs_reference"] < 1.0
    assert runs["LSL[0.2,0.8]"]["flops_vs_reference"] < runs["LSL"]["flops_vs_reference"]
    assert all(r["psnr"] < 100 for name, r in runs.items() if name != "LLL")
    assert report["criteria"]["early"] in (0.2, 0.4)
    assert len(report["rows"]) == 2 * 4 and json.loads((out / "report.json").read_text())["runs"] == report["runs"]
    assert "| LSL[0.2,0.8] |" in (out / "report.md").read_text()
    for item in items:
        assert (out / f"{item.id}-sheet.png").read_bytes()[:4] == b"\x89PNG"
        video, _ = read_mp4(out / f"{item.id}-side-by-side.mp4")
        assert video.shape[0] == 5 and video.shape[1] >= 2 * 128  # 4 runs tiled 2x2, upscaled


def tiny_clip(path):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=8)  # fmt: skip
    CLIPVisionModelWithProjection(config).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)


def tiny_dino(path):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    config = Dinov2Config(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                          image_size=32, patch_size=8)  # fmt: skip
    Dinov2Model(config).save_pretrained(path)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)


@pytest.mark.parametrize("kind, build", [("clip", tiny_clip), ("dino", tiny_dino)])
def test_local_embedders(tmp_path, kind, build):
    build(tmp_path / kind)
    embed = Embedder(kind, str(tmp_path / kind))
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (2, 32, 48, 3), dtype=np.uint8) for _ in range(2))
    assert embed.similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    assert embed.similarity(a, b) < 1.0 - 1e-4


def test_cli_compare(write_config, tmp_path):
    from typer.testing import CliRunner

    from fbgen.cli import app

    config = write_config(steps=4)
    cmd = ["compare", str(config), "--out", str(tmp_path / "c")]
    result = CliRunner().invoke(app, [*cmd, "--schedules", "LLL,LSL", "--json"])  # in-process: no ~8 s of imports
    assert result.exit_code == 0, result.stderr
    assert [r["run"] for r in json.loads(result.stdout)["runs"]] == ["LLL", "LSL"]
    for extra, message in ((["--sweep", "early=2"], "--sweep"), (["--schedules", "LXL"], "--schedules"),
                           (["--metric-model", "clip=/nonexistent"], "never downloaded")):  # fmt: skip
        bad = CliRunner().invoke(app, [*cmd, *extra])
        assert bad.exit_code == 2 and message in bad.stderr, bad.stderr


def test_compare_on_ltx(write_ltx_config, tmp_path):
    config = load_config(write_ltx_config(steps=4))
    report = compare(Engine.open(config), [Item("p1", "a red cat", 1, 3)], run_specs(config, ["LSL"], {}),
                     tmp_path / "ltx")  # fmt: skip
    runs = {r["run"]: r for r in report["runs"]}
    assert runs["LLL"]["psnr"] == 100.0 and 0 < runs["LSL"]["flops_vs_reference"] < 1
