"""Schedule comparison: the same prompts and seeds under several schedules (and boundary sweeps), each measured
against the large model alone (LLL) — wall time, FLOPs and fidelity — with contact sheets and side-by-side videos.

The sweep reproduces the paper's two criteria for LSL boundaries:
- early (L→S) point: the earliest one whose semantic similarity to LLL (CLIP, else DINO, else SSIM) is within
  `SEMANTIC_TOL` of the best of the sweep — moving the switch earlier than that loses semantics;
- late (S→L) return point: the latest one whose PSNR to LLL is within `ARTIFACT_TOL_DB` of the best of the sweep —
  returning any earlier no longer removes artifacts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fbgen.apps.batch import Item, item_seed
from fbgen.apps.calibrate import roles
from fbgen.apps.fidelity import HOW_TO_ENABLE, Embedder, pixel_fidelity
from fbgen.config import RunConfig
from fbgen.config.schema import experts
from fbgen.core.boundaries import PAPER_BOUNDARIES
from fbgen.core.errors import BadInput
from fbgen.engine.engine import Engine, sync
from fbgen.engine.job import Job
from fbgen.engine.progress import NoProgress
from fbgen.outputs.manifest import write_json
from fbgen.outputs.sheets import contact_sheet, side_by_side

SEMANTIC_TOL = 0.01
ARTIFACT_TOL_DB = 0.5


@dataclass(frozen=True)
class RunSpec:
    name: str
    schedule: str
    boundaries: tuple[float, ...]
    sweep: str | None = None  # "early" or "late"
    value: float | None = None


def parse_sweeps(texts: list[str] | None) -> dict[str, list[float]]:
    """`early=0.2,0.3,0.4` and/or `late=0.7,0.8,0.9` (step fractions)."""
    sweeps = {}
    for text in texts or []:
        kind, sep, values = text.partition("=")
        try:
            numbers = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            numbers = []
        if kind not in ("early", "late") or not sep or not numbers or not all(0 < v < 1 for v in numbers):
            raise BadInput(f"--sweep {text!r}: expected early=F,F,... or late=F,F,... with fractions in (0, 1)")
        sweeps[kind] = sorted(set(numbers))
    return sweeps


def run_specs(config: RunConfig, schedules: list[str], sweeps: dict[str, list[float]]) -> list[RunSpec]:
    """The reference first — LLL, or a two-expert checkpoint's own run (e.g. Wan 2.2's HL at its boundary_ratio) —
    then each schedule at the config's boundaries (the experts' pair at the checkpoint's), then the sweep points."""
    reference, small = roles(config)
    pair = experts(config.models)
    first = reference if pair else reference * 3
    specs = {first: RunSpec(first, first, () if pair else config.boundaries)}
    for schedule in schedules:
        if pair and schedule == first:
            continue
        if len(schedule) - 1 != len(config.boundaries):
            n = len(config.boundaries)
            raise BadInput(f"--schedules {schedule}: needs {len(schedule) - 1} boundaries but the config has {n}; "
                           f"compare schedules with {n + 1} stages")  # fmt: skip
        specs.setdefault(schedule, RunSpec(schedule, schedule, config.boundaries))
    if sweeps and (len(config.boundaries) != 2 or config.boundary_unit != "fraction"):
        raise BadInput("--sweep varies the two boundaries of a three-stage schedule (e.g. LSL) given as step "
                       "fractions; the config's boundaries are not")  # fmt: skip
    blend = f"{reference[0]}{small}{reference[-1]}"
    for kind, values in sweeps.items():
        for v in values:
            b = (v, config.boundaries[1]) if kind == "early" else (config.boundaries[0], v)
            if not b[0] < b[1]:
                raise BadInput(f"--sweep {kind}={v}: the early boundary must come before the late one ({b})")
            name = f"{blend}[{b[0]:g},{b[1]:g}]"
            specs.setdefault(name, RunSpec(name, blend, b, kind, v))
    return list(specs.values())


def variant(job: Job, spec: RunSpec, **changes: Any) -> Job:
    """The job with the spec's schedule and boundaries (and any other per-job key changed), checked."""
    return job.changed(f"--schedules {spec.name}", schedule=spec.schedule, boundaries=list(spec.boundaries),
                       **changes)  # fmt: skip


def render_specs(engine: Engine, items: list[Item], specs: list[RunSpec]
           ) -> Iterator[tuple[Item, int, dict[str, np.ndarray], dict[str, dict[str, float]]]]:  # fmt: skip
    """Every spec on every prompt from the same seed, after an untimed warm-up: yields (item, seed, frames per
    run, wall time and FLOPs per run), one prompt at a time."""
    config = engine.config
    seeds = [item.seed if item.seed is not None else item_seed(config.seed, item.id) for item in items]
    base = [Job.of(config, item.prompt, seed) for item, seed in zip(items, seeds)]
    variants = [{s.name: variant(job, s) for s in specs} for job in base]
    encoded = engine.encode(base)
    warm_up(engine, variants[0][specs[0].name], {m for s in specs for m in s.schedule}, encoded[0])
    for index, (item, seed, cond) in enumerate(zip(items, seeds, encoded)):
        videos, measured = {}, {}
        for spec in specs:
            job = variants[index][spec.name]
            engine.progress.item_start(index, len(items), f"{item.id} {spec.name}", engine.plan(job)[1])
            start = time.perf_counter()
            denoised = engine.denoise(job, cond)
            videos[spec.name] = engine.decode(job, denoised)
            sync(engine.device)
            flops = engine.executed(job, engine.flops(job, denoised.plan))["executed"]  # a cache skips work
            measured[spec.name] = {"wall_s": time.perf_counter() - start, "flops": flops}
        yield item, seed, videos, measured


def compare(
    engine: Engine, items: list[Item], specs: list[RunSpec], out_dir: Path,
    embedders: dict[str, Embedder] | None = None, calibration: dict | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run every spec on every prompt from the same seed; write report.json, report.md, sheets and videos."""
    config, embedders = engine.config, embedders or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for item, seed, videos, measured in render_specs(engine, items, specs):
        reference = videos[specs[0].name]
        for spec in specs:
            row = {"id": item.id, "prompt": item.prompt, "seed": seed, **describe(spec, measured, specs[0].name),
                   **pixel_fidelity(videos[spec.name], reference)}  # fmt: skip
            for kind, embed in embedders.items():
                row[kind] = embed.similarity(videos[spec.name], reference)
            rows.append(row)
        contact_sheet(videos, out_dir / f"{item.id}-sheet.png")
        side_by_side(videos, out_dir / f"{item.id}-side-by-side.mp4", config.fps)
    summary = aggregate(rows, specs, list(embedders))
    report = {
        "reference": specs[0].name, "prompts": [{"id": i.id, "prompt": i.prompt} for i in items],
        "size": [config.height, config.width, config.num_frames], "steps": config.steps, "solver": config.solver,
        "metrics": ["psnr", "ssim", *embedders], "metrics_note": None if embedders else HOW_TO_ENABLE,
        "runs": summary, "criteria": criteria(summary, list(embedders), config.boundaries),
        "calibrated": calibration.get("boundaries") if calibration else None, "rows": rows,
    }  # fmt: skip
    write_json(out_dir / "report.json", report)
    (out_dir / "report.md").write_text(markdown(report))
    return report


def describe(spec: RunSpec, measured: dict[str, dict[str, float]], reference: str) -> dict[str, Any]:
    """A run's identity, cost and cost relative to the reference run of the same prompt."""
    m = measured[spec.name]
    return {"run": spec.name, "schedule": spec.schedule, "boundaries": list(spec.boundaries), "sweep": spec.sweep,
            "value": spec.value, **m, "time_vs_reference": m["wall_s"] / measured[reference]["wall_s"],
            "flops_vs_reference": m["flops"] / measured[reference]["flops"]}  # fmt: skip


def warm_up(engine: Engine, job: Job, models: set[str], cond: Any) -> None:
    """Two untimed steps of each model and one decode, so the first timed run pays no one-off costs."""
    progress, engine.progress = engine.progress, NoProgress()
    try:
        for model in sorted(models):
            short = variant(job, RunSpec(model * 3, model * 3, PAPER_BOUNDARIES), steps=2, boundary_unit="fraction")
            engine.decode(short, engine.denoise(short, cond))
    finally:
        engine.progress = progress


def aggregate(rows: list[dict[str, Any]], specs: list[RunSpec], embedders: list[str]) -> list[dict[str, Any]]:
    keys = ["wall_s", "flops", "time_vs_reference", "flops_vs_reference", "psnr", "ssim", *embedders]
    out = []
    for spec in specs:
        mine = [r for r in rows if r["run"] == spec.name]
        out.append({"run": spec.name, "schedule": spec.schedule, "boundaries": list(spec.boundaries),
                    "sweep": spec.sweep, "value": spec.value,
                    **{k: float(np.mean([r[k] for r in mine])) for k in keys}})  # fmt: skip
    return out


def criteria(summary: list[dict[str, Any]], embedders: list[str], base: tuple[float, ...]) -> dict[str, Any]:
    """The paper's two boundary criteria read off the sweep (see the module docstring). The config's own LSL run,
    when compared, is a point of both sweeps."""
    semantic = next((k for k in ("clip", "dino") if k in embedders), "ssim")
    out: dict[str, Any] = {"semantic_metric": semantic, "semantic_tol": SEMANTIC_TOL,
                           "artifact_metric": "psnr", "artifact_tol_db": ARTIFACT_TOL_DB}  # fmt: skip
    swept = {r["sweep"] for r in summary if r["sweep"]}
    blend = next((r["schedule"] for r in summary if r["sweep"]), None)
    lsl = [r for r in summary if r["schedule"] == blend]
    if "early" in swept:
        early = sorted((r for r in lsl if r["boundaries"][1] == base[1]), key=lambda r: r["boundaries"][0])
        best = max(r[semantic] for r in early)
        out["early"] = next(r["boundaries"][0] for r in early if r[semantic] >= best - SEMANTIC_TOL)
    if "late" in swept:
        late = [r for r in lsl if r["boundaries"][0] == base[0]]
        best = max(r["psnr"] for r in late)
        out["late"] = max(r["boundaries"][1] for r in late if r["psnr"] >= best - ARTIFACT_TOL_DB)
    return out


def markdown(report: dict[str, Any]) -> str:
    extra = [m for m in report["metrics"] if m not in ("psnr", "ssim")]
    h, w, f = report["size"]
    lines = [
        f"# fbgen compare: {len(report['prompts'])} prompt(s), {h}×{w}×{f}, {report['steps']} steps "
        f"({report['solver']})",
        "",
        f"Fidelity is measured against {report['reference']} from the same seed; times and FLOPs are per video "
        "(denoise + decode), averaged over prompts.",
        "",
        "| run | boundaries | wall s | time vs ref | FLOPs vs ref | PSNR dB | SSIM |"
        + "".join(f" {m.upper()} |" for m in extra),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(extra),
    ]  # fmt: skip
    for r in report["runs"]:
        psnr = "∞ (reference)" if r["run"] == report["reference"] else f"{r['psnr']:.2f}"
        lines.append(f"| {r['run']} | {r['boundaries']} | {r['wall_s']:.2f} | {r['time_vs_reference']:.3f} | "
                     f"{r['flops_vs_reference']:.3f} | {psnr} | {r['ssim']:.4f} |"
                     + "".join(f" {r[m]:.4f} |" for m in extra))  # fmt: skip
    c = report["criteria"]
    lines += ["", "## Boundary criteria", ""]
    if "early" in c:
        lines.append(f"- earliest L→S point before {c['semantic_metric'].upper()} similarity to the reference drops "
                     f"(within {c['semantic_tol']} of the sweep's best): **{c['early']:g}**")  # fmt: skip
    if "late" in c:
        lines.append(f"- latest S→L return point after which PSNR stops improving (within {c['artifact_tol_db']} dB "
                     f"of the sweep's best): **{c['late']:g}**")  # fmt: skip
    if "early" not in c and "late" not in c:
        lines.append("- no sweep was run (`--sweep early=0.2,0.3,0.4 --sweep late=0.7,0.8,0.9`)")
    if report["calibrated"]:
        cal = report["calibrated"]
        lines.append(f"- calibrated boundaries (`fbgen calibrate`, {cal['shape']} curve): **{cal['fractions']}**")
    if report["metrics_note"]:
        lines += ["", f"_{report['metrics_note']}; LPIPS is not offered (its backbones are torchvision downloads)._"]
    lines += ["", "Per prompt: `<id>-sheet.png` (rows = runs, columns = frames), `<id>-side-by-side.mp4`.", ""]
    return "\n".join(lines)


def load_calibration(path: Path | None) -> dict | None:
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise BadInput(f"{path}: not a calibration.json") from None
