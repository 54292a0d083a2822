import pytest

from fbgen.core.schedule import build_plan, stage_starts

N = 10
TIMESTEPS = [1000 - 100 * i for i in range(N)]
SIGMAS = [t / 1000 for t in TIMESTEPS]


def plan(schedule, boundaries, unit="fraction"):
    return build_plan(schedule, boundaries, unit, TIMESTEPS, SIGMAS)


def test_lsl_at_paper_boundaries_is_40_40_20():
    p = build_plan("LSL", [0.4, 0.8], "fraction", list(range(50)), [1 - i / 50 for i in range(50)])
    assert p.models == ("L",) * 20 + ("S",) * 20 + ("L",) * 10
    assert [(s.model, s.start, s.end) for s in p.stages] == [("L", 0, 20), ("S", 20, 40), ("L", 40, 50)]
    assert p.tag() == "LSL-20-40-n50"


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("LLL", "LLLLLLLLLL"),
        ("SSS", "SSSSSSSSSS"),
        ("LSS", "LLLLSSSSSS"),
        ("SLL", "SSSSLLLLLL"),
        ("LSL", "LLLLSSSSLL"),
    ],
)
def test_three_stage_schedules(schedule, expected):
    assert "".join(plan(schedule, [0.4, 0.8]).models) == expected


def test_step_indices_and_longer_schedules():
    assert "".join(plan("LMSML", [2, 4, 6, 8], "step").models) == "LLMMSSMMLL"
    assert "".join(plan("LS", [3], "step").models) == "LLLSSSSSSS"


def test_sigma_thresholds_switch_like_wan22():
    # a step belongs to the next stage once its sigma is below the threshold
    p = plan("LSL", [0.75, 0.35], "sigma")
    assert "".join(p.models) == "LLLSSSSLLL"
    assert [p.sigmas[i] for i in (2, 3, 6, 7)] == [0.8, 0.7, 0.4, 0.3]


def test_merged_stages_and_tags():
    p = plan("LLL", [0.4, 0.8])
    assert len(p.stages) == 1 and p.tag() == "LLL-n10"
    empty_middle = plan("LSL", [0.5, 0.5])
    assert "S" not in empty_middle.models and len(empty_middle.stages) == 1


def test_fraction_rounding_and_clamping():
    assert stage_starts([0.25, 0.75], "fraction", [0.0] * 10) == [3, 8]  # rounds half up, no banker's rounding
    assert stage_starts([0.9], "sigma", [0.5, 0.4]) == [0]


def test_wrong_boundary_count_is_refused():
    with pytest.raises(ValueError):
        plan("LSL", [0.5])
