
import pytest
import yaml

from fbgen.config import load_config
from fbgen.core.errors import BadInput

BASE = {"models": {"large": "org/big", "small": "org/small"}, "prompt": "a cat", "device": "cpu"}


def config_file(tmp_path, **changes):
    data = {**BASE, **changes}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def error(tmp_path, overrides=None, **changes) -> str:
    with pytest.raises(BadInput) as e:
        load_config(config_file(tmp_path, **changes), overrides)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_defaults_follow_the_paper_and_wan(tmp_path):
    c = load_config(config_file(tmp_path))
    assert c.schedule == "LSL" and c.boundaries == (0.4, 0.8) and c.boundary_unit == "fraction"
    assert (c.height, c.width, c.num_frames, c.fps, c.steps) == (480, 832, 81, 16, 50)
    assert c.solver == "unipc" and c.shift == 3.0 and c.guidance_scale == {"L": 5.0, "S": 5.0}
    assert set(c.models) == {"L", "S"} and c.large == "L"


def test_overrides_parse_yaml_values_and_aliases(tmp_path):
    c = load_config(config_file(tmp_path), ["steps=30", "boundaries=[3, 20]", "models.S=org/other",
                                           "guidance_scale.large=6", "guidance_scale.S=1"])  # fmt: skip
    assert c.steps == 30 and c.boundaries == (3, 20) and c.boundary_unit == "step"
    assert c.models["S"].id == "org/other"
    assert c.guidance_scale == {"L": 6.0, "S": 1.0}


def test_more_letters_and_sigma_boundaries(tmp_path):
    c = load_config(config_file(tmp_path, models={"L": "a/l", "M": "a/m", "S": "a/s"}, schedule="LMSML",
                                boundaries=[0.2, 0.4, 0.6, 0.8]))  # fmt: skip
    assert c.schedule == "LMSML"
    c = load_config(config_file(tmp_path, boundaries=[0.9, 0.5], boundary_unit="sigma"))
    assert c.boundaries == (0.9, 0.5)


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"stepz": 3}, "unknown key; did you mean 'steps'?"),
        ({"steps": "many"}, "key 'steps': expected an integer"),
        ({"num_frames": 80}, "key 'num_frames': wan needs 4k+1 frames (e.g. 77 or 81), got 80"),
        ({"height": 470}, "key 'height': wan needs height and width divisible by 16"),
        ({"boundaries": [0.8, 0.4]}, "key 'boundaries': fractions must lie in (0, 1) and not decrease"),
        ({"boundaries": [0.4, 1.2]}, "key 'boundaries'"),
        ({"boundaries": [0.4]}, "needs a list of 2 boundaries"),
        ({"boundaries": [10, 60]}, "step indices must be integers in 1..49"),
        ({"schedule": "LXL"}, "key 'schedule': letter(s) X of LXL name no model"),
        ({"schedule": "lsl"}, "key 'schedule': expected capital letters"),
        ({"device": "tpu"}, "key 'device': must be auto, cpu, cuda or cuda:N"),
        ({"solver": "ddim"}, "key 'solver': must be one of unipc, euler"),
        ({"offload": "all"}, "key 'offload': must be one of none, idle, group"),
        ({"filename": "../{slug}"}, "key 'filename'"),
        ({"filename": "{prompt}"}, "key 'filename'"),
        ({"guidance_scale": {"L": 5}}, "no scale for model(s) S"),
        ({"prompt": ""}, "key 'prompt'"),
        ({"models": {"huge": "a/b"}}, "key 'models.huge'"),
        ({"lora": {"X": "x"}}, "key 'lora.X': names no model"),
        ({"lora": {"S": {"path": "x", "rank": 4}}}, "unknown field(s) ['rank']"),
        ({"lora": {"S": {"path": "x", "fuse": "yes"}}}, "key 'lora.S.fuse': expected true or false"),
        ({"cache": {"type": "fast"}}, "type must be one of first_block, taylorseer, seacache (family wan)"),
        ({"cache": {"type": "first_block", "thresh": 1}}, "unknown setting(s) ['thresh'] for first_block"),
        ({"cache": {"X": {"type": "first_block"}}}, "key 'cache.X': names no model"),
        ({"cache": {"type": "first_block", "threshold": "high"}}, "key 'cache.threshold': expected a number"),
        ({"cache": {"S": {"type": "seacache", "threshold": -1}}}, "'cache.S': seacache: `threshold` must be non-neg"),
        (
            {
                "family": "ltx",
                "models": {"L": "a/b", "S": "c/d"},
                "height": 512,
                "width": 704,
                "num_frames": 17,
                "solver": "euler",
                "cache": {"type": "seacache"},
            },
            "one of first_block, taylorseer (family ltx)",
        ),
        ({"attention_backend": "flash_hub"}, "key 'attention_backend': must be one of flash,"),
    ],
)
def test_bad_values_get_one_line_naming_the_key(tmp_path, changes, expected):
    if changes.get("device") == "cuda":
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is present")
    message = error(tmp_path, **changes)
    assert expected in message
    assert str(tmp_path / "c.yaml") in message


def test_set_errors_name_the_override(tmp_path):
    assert error(tmp_path, ["steps=0"]).startswith("--set steps: must be >= 1")
    assert error(tmp_path, ["nonsense"]).startswith("--set 'nonsense': expected key=value")


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(BadInput, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1, 2\nfoo: bar\n")
    with pytest.raises(BadInput, match="line .* is not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(BadInput, match="must be a YAML mapping"):
        load_config(scalar)


def test_yaml_tags_are_not_executed(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("steps: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_config(evil)


