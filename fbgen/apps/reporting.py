"""How a run shows itself: Rich progress and tables on a TTY, plain log lines in farm logs, nothing with --quiet."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fbgen.core.schedule import Plan


def tflop(flops: float) -> str:
    return f"{flops / 1e12:,.3f}" if flops >= 1e9 else f"{flops / 1e12:.3g}"


class RichProgress:
    """A step bar per video whose description names the model running now."""

    def __init__(self, console: Console):
        self.console = console
        self.bar = Progress(
            TextColumn("[bold]{task.fields[name]}"), TextColumn("model [cyan]{task.fields[model]}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )  # fmt: skip
        self.task = None

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.stop()

    def phase(self, message: str) -> None:
        self.console.log(message)

    def item_start(self, index: int, total: int, name: str, plan: Plan) -> None:
        label = f"[{index + 1}/{total}] {name}" if total > 1 else name
        self.task = self.bar.add_task("", total=plan.steps, name=label, model=plan.models[0])
        self.plan = plan

    def step(self, index: int, model: str) -> None:
        upcoming = self.plan.models[min(index + 1, self.plan.steps - 1)]
        self.bar.update(self.task, advance=1, model=upcoming)

    def item_end(self, record: dict[str, Any]) -> None:
        pass


class LogProgress:
    """One line per stage and per finished video: readable in a SLURM log, no control characters."""

    def __init__(self, stream=None, name: str = "fbgen"):
        self.stream, self.name = stream or sys.stdout, name

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def log(self, message: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.name}: {message}", file=self.stream, flush=True)

    def phase(self, message: str) -> None:
        self.log(message)

    def item_start(self, index: int, total: int, name: str, plan: Plan) -> None:
        self.plan, self.prefix = plan, f"[{index + 1}/{total}] {name}"
        stages = ", ".join(f"{s.model}[{s.start},{s.end})" for s in plan.stages)
        self.log(f"{self.prefix}: {plan.steps} steps, stages {stages}")

    def step(self, index: int, model: str) -> None:
        stage = next(s for s in self.plan.stages if s.start <= index < s.end)
        if index == stage.end - 1:
            self.log(f"{self.prefix}: stage {model} steps {stage.start}-{stage.end - 1} done")

    def item_end(self, record: dict[str, Any]) -> None:
        wall, flops = record["wall_s"], record["flops"]
        skipped = flops["executed"] < flops["total"]
        reused = f", {tflop(flops['executed'])} TFLOP run with cache reuse" if skipped else ""
        self.log(f"{self.prefix}: wrote {record['output']} ({wall['total']:.1f} s, {tflop(flops['total'])} TFLOP, "
                 f"{100 * flops['saving']:.1f}% fewer FLOPs than large-only{reused})")  # fmt: skip


class QuietProgress(LogProgress):
    def log(self, message: str) -> None:
        pass


def summary_table(records: list[dict[str, Any]]) -> Table:
    table = Table(title="fbgen run")
    for column in ("video", "schedule", "wall s", "denoise s", "TFLOP", "vs large-only"):
        table.add_column(column, justify="left" if column == "video" else "right")
    for r in records:
        table.add_row(
            Path(r["output"]).name, r["schedule"], f"{r['wall_s']['total']:.2f}", f"{r['wall_s']['denoise']:.2f}",
            tflop(r["flops"]["total"]), f"{r['flops']['ratio']:.3f}× ({100 * r['flops']['saving']:.1f}% saved)",
        )  # fmt: skip
    return table


def batch_table(data: dict[str, Any]) -> Table:
    workers = len(data.get("workers", [])) or 1
    table = Table(title=f"fbgen batch, {workers} worker(s)")
    for column in ("rendered", "already done", "failed", "videos/hour", "mean s/video", "FLOPs saved vs large-only"):
        table.add_column(column, justify="right")
    mean, saved = data["mean_s_per_video"], data["flops_saved"]
    skipped = data.get("skipped", "-")
    table.add_row(str(data["done"]), str(skipped), str(data["failed"]), f"{data['videos_per_hour']:.1f}",
                  "-" if mean is None else f"{mean:.2f}", "-" if saved is None else f"{100 * saved:.1f}%")  # fmt: skip
    return table


def calibration_table(result: dict[str, Any]) -> Table:
    """Per step: sigma, the stage the calibrated boundaries give it, and each divergence as mean ± spread."""
    b1, b2 = result["boundaries"]["steps"]
    large, small = result["large"], result["small"]
    table = Table(title=f"calibration: {small} vs {large} ({len(result['prompts'])} prompt(s), "
                        f"{result['boundaries']['shape']}; boundaries at steps {b1} and {b2})")  # fmt: skip
    names = ("rel L2 guided", "cos dist guided", "rel L2 cond", "cos dist cond")
    for column in ("step", "sigma", "stage", *names):
        table.add_column(column, justify="right")
    metrics = ("rel_l2_guided", "cos_guided", "rel_l2_cond", "cos_cond")
    for i, sigma in enumerate(result["sigmas"]):
        stage = large if i < b1 or i >= b2 else small
        cells = [f"{result['per_step'][m]['mean'][i]:.4f} ± {result['per_step'][m]['std'][i]:.4f}" for m in metrics]
        table.add_row(str(i), f"{sigma:.4f}", stage, *cells)
    return table


def plan_table(plan: Plan, per_step: list[int], flops: dict[str, Any]) -> Table:
    table = Table(title=f"plan: {plan.schedule} over {plan.steps} steps")
    for column in ("step", "timestep", "sigma", "model", "TFLOP"):
        table.add_column(column, justify="right")
    for i, (m, t, s) in enumerate(zip(plan.models, plan.timesteps, plan.sigmas)):
        table.add_row(str(i), f"{t:.1f}", f"{s:.4f}", m, tflop(per_step[i]))
    table.add_section()
    table.add_row("total", "", "", "", tflop(flops["total"]))
    table.add_row("large-only", "", "", "", tflop(flops["large_only"]))
    table.add_row("saving", "", "", "", f"{100 * flops['saving']:.1f}%")
    return table


def quiet_libraries() -> None:
    """diffusers/transformers progress bars and info logs would interleave with fbgen's own output."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
