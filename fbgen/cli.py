"""The `fbgen` command: thin Typer shells over `fbgen.config.schema`, `fbgen.engine.engine` and friends.

Errors a user can fix print one line and exit 2 (bad input) or 3 (model); Ctrl-C/SIGTERM exit 130; a traceback
only with --debug.
"""

from __future__ import annotations

from fbgen.core import interrupts

interrupts.install(deferred=True)  # first, before the imports: pre-emption during start-up is an interruption too

import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import fbgen  # noqa: E402

# torchao (optional, for `quantization:`) logs at import, when diffusers imports it, about kernels for GPUs this
# machine may not have; a command's stderr is for its own one-line errors
for _name in ("torchao", "torch.utils._pytree", "diffusers.quantizers.torchao.torchao_quantizer"):
    logging.getLogger(_name).setLevel(logging.ERROR)
from fbgen.core.errors import EXIT_INTERRUPTED, FbgenError  # noqa: E402

app = typer.Typer(
    name="fbgen",
    help="FlowBlending video generation: large model early and late, small model in the middle (LSL).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a config key with the same checks: --set steps=30."),
]
ScheduleOption = Annotated[str | None, typer.Option("--schedule", help="Schedule string, e.g. LSL, LLL, SSS.")]
JsonOption = Annotated[
    bool, typer.Option("--json", metavar="", help="Print a machine-readable JSON summary on stdout.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="Print nothing but errors.")]
DebugOption = Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks.")]


def _version(value: bool) -> None:
    if value:
        print(f"fbgen {fbgen.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", metavar="", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """FlowBlending: stage-aware multi-model sampling for Wan 2.1 (and, later, LTX-Video)."""


def _guarded(debug: bool, body: Callable[[], int]) -> None:
    """Run a command body, turning known failures into one line and an exit code. A SIGTERM/SIGINT that came at any
    point is exit 130, even if some library swallowed its KeyboardInterrupt."""
    interrupts.install()
    try:
        interrupts.check()
        code = body()
        interrupts.check()
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except FbgenError as e:
        if debug:
            traceback.print_exc()
        print(f"fbgen: error: {e}", file=sys.stderr)
        code = e.exit_code
    except BaseException as e:  # an fbgen bug or an unexpected library failure (or one a signal caused)
        if isinstance(e, SystemExit) and not interrupts.interrupted():
            raise
        if debug:
            traceback.print_exc()
        first = str(e).splitlines()[0] if str(e) else ""
        if not interrupts.interrupted():
            print(f"fbgen: error: {type(e).__name__}: {first} (rerun with --debug for the traceback)", file=sys.stderr)
        code = 1
    if interrupts.interrupted():
        print("fbgen: interrupted; no partial file was left under a final name", file=sys.stderr)
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)


@app.command()
def run(
    config: Annotated[
        Path | None, typer.Argument(metavar="[CONFIG]", help="Run config (YAML).", show_default=False)
    ] = None,
    demo: Annotated[
        bool,
        typer.Option("--demo", metavar="", help="Run the packaged demo config (fbgen/demo/demo.yaml): shipped pair."),
    ] = False,
    set_: SetOption = None,
    schedule: ScheduleOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (overrides output_dir).")] = None,
    sheet: Annotated[
        bool, typer.Option("--sheet", metavar="", help="Also write contact-sheet.png: one row per video.")
    ] = False,
    json_: JsonOption = False,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Generate the config's video(s): MP4 + a JSON manifest each.

    Example: fbgen run configs/wan2.1-14b-1.3b-lsl.yaml --set seed=7 --schedule LSL --out outputs/
    (fbgen run --demo: the shipped demo pair, nothing else needed)
    """

    def body() -> int:
        from fbgen.apps.reporting import summary_table
        from fbgen.config import load_config
        from fbgen.core.errors import BadInput
        from fbgen.engine.engine import Engine
        from fbgen.engine.job import config_jobs

        if (config is None) != demo:
            raise BadInput("fbgen run: give a CONFIG file or --demo (the packaged demo config), "
                           + ("not both" if demo else "e.g. fbgen run configs/demo.yaml"))  # fmt: skip
        from fbgen.families.demo import CONFIG as DEMO_CONFIG

        cfg = load_config(config or DEMO_CONFIG, set_, schedule=schedule, output_dir=str(out) if out else None)
        jobs = config_jobs(cfg)  # two prompts that would share a file name: refused before anything loads
        console, tty, progress = _progress(quiet, json_)
        with progress:
            records = Engine.open(cfg, progress).run(jobs)
        if sheet:
            from fbgen.outputs.sheets import contact_sheet
            from fbgen.outputs.video import read_mp4

            rows = {f"{r['schedule']} seed {r['seed']}: {r['prompt']}": read_mp4(r["output"])[0] for r in records}
            path = contact_sheet(rows, Path(cfg.output_dir) / "contact-sheet.png", columns=9)
            if not quiet and not json_:
                console.print(f"contact sheet: {path}")
        if json_:
            print(json.dumps({"exit_code": 0, "output_dir": cfg.output_dir, "items": [_brief(r) for r in records]},
                             indent=2))  # fmt: skip
            return 0
        if tty:
            console.print(summary_table(records))
        if not quiet:
            print(f"wrote {len(records)} video(s) to {cfg.output_dir}; manifests: "
                  + ", ".join(Path(r["output"]).name.split(".")[0] + ".json" for r in records)
                  if len(records) <= 3 else f"wrote {len(records)} video(s) and their manifests (<name>.json) "
                  f"to {cfg.output_dir}")  # fmt: skip
        return 0

    _guarded(debug, body)


@app.command()
def batch(
    prompts: Annotated[
        Path, typer.Argument(metavar="PROMPTS", help="Prompts: .txt (one a line) or .jsonl.", show_default=False)
    ],
    config: Annotated[Path, typer.Option("--config", "-c", help="Run config (YAML).", show_default=False)],
    set_: SetOption = None,
    schedule: ScheduleOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (overrides output_dir).")] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="K/N (1-based): a static split. Default: share the whole queue.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="Redo items that are already done (once per run).")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", metavar="", help="Redo items recorded as failed (once per run).")
    ] = False,
    lease: Annotated[
        float, typer.Option("--lease", min=1.0, help="Seconds without a heartbeat before an item is taken over.")
    ] = 120.0,
    devices: Annotated[
        str | None, typer.Option("--devices", help="GPUs of this machine, e.g. 0,1,2,3 or all: one worker each.")
    ] = None,
    ray: Annotated[
        str | None, typer.Option("--ray", help="Run on a Ray cluster: auto, host:port, ray://host:port or local.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="With --ray: number of actors (default: one per GPU).")
    ] = None,
    json_: JsonOption = False,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Render every prompt exactly once, with models loaded once per worker. Start as many workers as you like on
    the same prompts and output dir (SLURM arrays, srun, torchrun, shells): they share the queue.

    Exit 0 only when every item is done; 1 when any failed (now or earlier; see --retry-failed) or is missing;
    2 bad input, 3 missing model, 130 interrupted. `fbgen status OUT_DIR` tells where a batch stands.

    Example: fbgen batch prompts/examples.txt --config configs/demo.yaml --devices 0,1
    """

    def body() -> int:
        from fbgen.apps.batch import Batch, parse_shard, read_prompts
        from fbgen.apps.launchers import parse_devices, run_local, run_ray
        from fbgen.apps.reporting import batch_table
        from fbgen.apps.status import batch_status
        from fbgen.apps.worker import BatchSummary, Options, Worker, run_batch, wait_for_peers
        from fbgen.config import load_config
        from fbgen.core.errors import BadInput

        cfg = load_config(config, set_, schedule=schedule, output_dir=str(out) if out else None)
        items = read_prompts(prompts)
        the_shard = parse_shard(shard)
        if devices and ray:
            raise BadInput("--devices and --ray exclude each other (Ray places one actor per GPU itself)")
        if workers and not ray:
            raise BadInput("--workers goes with --ray (with --devices, one worker per listed GPU)")
        the_batch = Batch.prepare(cfg, items, the_shard, str(prompts))  # names checked before any model loads
        options = Options(force, retry_failed, lease)
        console, tty, progress = _progress(quiet, json_)
        if ray:
            summaries, code = run_ray(ray, cfg, the_batch, items, workers, options, quiet or json_, progress.phase)
            data = BatchSummary.merged(summaries)
        elif devices:
            child = [str(prompts), "--config", str(config), *(a for s in set_ or [] for a in ("--set", s))]
            child += ["--schedule", schedule] if schedule else []
            child += ["--out", str(out)] if out else []
            child += ["--shard", shard] if shard else []
            child += ["--force"] * force + ["--retry-failed"] * retry_failed + ["--lease", str(lease)]
            child += ["--quiet"] * (quiet or json_)
            summaries, code = run_local(child, cfg, parse_devices(devices, cfg.device))
            data = BatchSummary.merged(summaries)
        else:
            worker = Worker.here()
            with progress:
                data = run_batch(cfg, the_batch, items, worker, options, progress)
            code = data["exit_code"]
        if ray or devices:  # the drivers judge the batch from its files once every worker has ended
            state = batch_status(cfg.output_dir)
            mine = {i.id for i in the_batch.items}
            data["failed_items"] = [f for f in state["items"]["failed"] if f["id"] in mine]
            data["missing_items"] = [m for m in state["items"]["missing"] + state["items"]["in_progress"]
                                     if m["id"] in mine]  # fmt: skip
            data["failed"] = len(data["failed_items"])
            if code == 0 and (data["failed_items"] or data["missing_items"]):
                code = 1
            for item in data["missing_items"]:
                print(f"fbgen: item {item['id']} (line {item['line']}) was not rendered", file=sys.stderr)
        for item in data["failed_items"]:
            print(f"fbgen: item {item['id']} (line {item['line']}) failed: {item['error']}", file=sys.stderr)
        if json_:
            print(json.dumps({"exit_code": code, **data}, indent=2))
        elif tty:
            console.print(batch_table(data))
        elif not quiet:
            progress.log(f"batch done: {json.dumps({k: v for k, v in data.items() if k not in _LONG_KEYS})}")
        if not (ray or devices) and code:
            wait_for_peers(cfg.output_dir, worker, lease)  # torchrun would kill ranks still ending
        return code

    _guarded(debug, body)


_LONG_KEYS = ("workers", "failed_items", "missing_items", "in_progress_elsewhere")


@app.command()
def status(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT_DIR", help="A batch's output directory.", show_default=False)],
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Where a batch stands: done, failed, in progress and missing items, from its files alone.

    Exit 0 only when every item is done (the gate before publishing), 1 otherwise, 2 if OUT_DIR is not a batch.

    Example: fbgen status /shared/renders/run1 && publish.sh /shared/renders/run1
    """

    def body() -> int:
        from fbgen.apps.status import STATES, batch_status

        state = batch_status(out_dir)
        code = 0 if state["complete"] else 1
        if json_:
            print(json.dumps({"exit_code": code, **state}, indent=2))
            return code
        print(f"{state['output_dir']}: {state['total']} items: " + ", ".join(f"{state[s]} {s.replace('_', ' ')}"
                                                                             for s in STATES))  # fmt: skip
        for entry in state["items"]["failed"]:
            print(f"failed: {entry['id']} (line {entry['line']}): {entry['error']}")
        for entry in state["items"]["in_progress"]:
            age = entry["last_heartbeat_s"]
            print(f"in progress: {entry['id']} (line {entry['line']}) on {entry['worker']}"
                  + ("" if age is None else f", last heartbeat {age:.0f} s ago"))  # fmt: skip
        for entry in state["items"]["missing"]:
            print(f"missing: {entry['id']} (line {entry['line']}): {entry['why']}")
        return code

    _guarded(debug, body)


@app.command()
def calibrate(
    config: Annotated[
        Path, typer.Argument(metavar="CONFIG", help="Run config (YAML) naming the large and small model.")
    ],
    prompts: Annotated[Path, typer.Option("--prompts", help="Prompts: .txt or .jsonl, as for batch.")],
    steps: Annotated[
        int | None, typer.Option("--steps", min=3, help="Denoising steps (default: the config's).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write (default: <output_dir>/calibration).")
    ] = None,
    set_: SetOption = None,
    json_: JsonOption = False,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Measure where the small model agrees with the large one and pick LSL boundaries from it.

    Writes calibration.json, calibration.png, calibration-snippet.yaml and a trace per prompt (a rerun resumes).

    Example: fbgen calibrate configs/wan2.1-14b-1.3b-lsl.yaml --prompts prompts/examples.txt --steps 30
    """

    def body() -> int:
        from fbgen.apps.batch import read_prompts
        from fbgen.apps.calibrate import calibrate as run_calibration
        from fbgen.apps.calibrate import check_calibration, roles
        from fbgen.apps.reporting import calibration_table
        from fbgen.config import load_config
        from fbgen.engine.engine import Engine, resolve_device

        overrides = [*(set_ or []), *([f"steps={steps}"] if steps else [])]
        cfg = load_config(config, overrides)
        reference, small = roles(cfg)  # every model either needs is loaded:
        cfg = load_config(config, [*overrides, "boundaries=[]"], schedule=f"{reference[0]}{small}{reference[-1]}")
        check_calibration(cfg, resolve_device(cfg.device).type)  # before any weights load
        items = read_prompts(prompts)
        out_dir = out or Path(cfg.output_dir) / "calibration"
        console, tty, progress = _progress(quiet, json_)
        with progress:
            result = run_calibration(Engine.open(cfg, progress), items, out_dir)
        if json_:
            print(json.dumps({"exit_code": 0, "out": str(out_dir), "boundaries": result["boundaries"]}, indent=2))
        elif not quiet:
            console.print(calibration_table(result))
            console.print(result["snippet"], highlight=False, markup=False)
            console.print(f"wrote {out_dir}/calibration.json, calibration.png, calibration-snippet.yaml")
        return 0

    _guarded(debug, body)


@app.command()
def compare(
    config: Annotated[
        Path, typer.Argument(metavar="CONFIG", help="Run config (YAML) naming the large and small model.")
    ],
    schedules: Annotated[str, typer.Option("--schedules", help="Comma-separated schedules.")] = "LLL,SSS,LSS,SLL,LSL",
    prompts: Annotated[Path | None, typer.Option("--prompts", help="Prompts file (default: the config's).")] = None,
    sweep: Annotated[
        list[str] | None, typer.Option("--sweep", help="LSL boundary sweep: early=0.2,0.3,0.4 or late=0.7,0.8,0.9.")
    ] = None,
    metric_model: Annotated[
        list[str] | None, typer.Option("--metric-model", help="clip=DIR or dino=DIR: local weights for similarity.")
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option("--calibration", help="calibration.json to mark (default: <output_dir>/calibration).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write (default: <output_dir>/compare).")] = None,
    set_: SetOption = None,
    json_: JsonOption = False,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Run schedules from the same seeds and compare time, FLOPs and fidelity to LLL; sweep LSL boundaries.

    Writes report.json, report.md and per prompt a contact sheet PNG and a side-by-side MP4.

    Example: fbgen compare configs/demo.yaml --schedules LLL,SSS,LSL --sweep early=0.2,0.3,0.4
    """

    def body() -> int:
        from fbgen.apps.batch import Item, read_prompts
        from fbgen.apps.calibrate import roles
        from fbgen.apps.compare import compare as run_compare
        from fbgen.apps.compare import load_calibration, parse_sweeps, run_specs
        from fbgen.apps.fidelity import load_embedders
        from fbgen.config import load_config
        from fbgen.core.errors import BadInput
        from fbgen.engine.engine import Engine

        cfg = load_config(config, set_)
        reference, small = roles(cfg)  # every model the schedules can name is loaded once:
        loaded = f"{reference[0]}{small}{reference[-1]}"
        keep = len(cfg.boundaries) == 2  # a three-stage config's boundaries are the ones its schedules compare at
        cfg = load_config(config, [*(set_ or []), *([] if keep else ["boundaries=[]"])], schedule=loaded)
        names = [s.strip() for s in schedules.split(",") if s.strip()]
        for name in names:
            if not name.isalpha() or not name.isupper() or set(name) - set(cfg.models):
                raise BadInput(
                    f"--schedules {name!r}: letters must name models of the config ({', '.join(cfg.models)})"
                )
        specs = run_specs(cfg, names, parse_sweeps(sweep))
        items = read_prompts(prompts) if prompts else [Item(f"prompt-{i + 1}", p, 0, cfg.seed)
                                                         for i, p in enumerate(cfg.prompts)]  # fmt: skip
        embedders = load_embedders(metric_model)
        cal = load_calibration(calibration or Path(cfg.output_dir) / "calibration" / "calibration.json")
        out_dir = out or Path(cfg.output_dir) / "compare"
        console, tty, progress = _progress(quiet, json_)
        with progress:
            report = run_compare(Engine.open(cfg, progress), items, specs, out_dir, embedders, cal)
        if json_:
            print(json.dumps({"exit_code": 0, "out": str(out_dir), "runs": report["runs"],
                              "criteria": report["criteria"]}, indent=2))  # fmt: skip
        elif not quiet:
            console.print((out_dir / "report.md").read_text(), markup=False, highlight=False)
            console.print(f"wrote {out_dir}/report.json, report.md, per-prompt sheets and side-by-side videos")
        return 0

    _guarded(debug, body)


@app.command(name="eval")
def eval_(
    videos: Annotated[
        Path, typer.Argument(metavar="VIDEOS", help="An MP4, or a directory of MP4s.", show_default=False)
    ],
    reference: Annotated[
        Path, typer.Option("--reference", help="The reference MP4, or a directory with same-named MP4s.")
    ],
    metric_model: Annotated[
        list[str] | None, typer.Option("--metric-model", help="clip=DIR or dino=DIR: local weights for similarity.")
    ] = None,
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Fidelity of existing videos to references: PSNR, SSIM (and CLIP/DINO similarity with local weights).

    Example: fbgen eval outputs/lsl --reference outputs/lll
    """

    def body() -> int:
        from fbgen.apps.evaluate import evaluate
        from fbgen.apps.fidelity import HOW_TO_ENABLE, load_embedders

        result = evaluate(videos, reference, load_embedders(metric_model))
        if json_:
            print(json.dumps({"exit_code": 0, **result}, indent=2))
            return 0
        table = Table(title=f"fbgen eval: {len(result['items'])} video(s)")
        metrics = list(result["mean"])
        for column in ("video", "reference", *metrics):
            table.add_column(column, justify="left" if column in ("video", "reference") else "right")
        for item in result["items"]:
            table.add_row(Path(item["video"]).name, Path(item["reference"]).name, *(f"{item[m]:.4f}" for m in metrics))
        table.add_section()
        table.add_row("mean", "", *(f"{result['mean'][m]:.4f}" for m in metrics))
        console = Console()
        console.print(table)
        if not metric_model:
            console.print(HOW_TO_ENABLE, highlight=False, markup=False)
        return 0

    _guarded(debug, body)


def _progress(quiet: bool, json_: bool) -> tuple[Console, bool, Any]:
    """Rich on a TTY, plain log lines in farm logs, nothing with --quiet or --json (stdout is for the JSON)."""
    from fbgen.apps.reporting import LogProgress, QuietProgress, RichProgress, quiet_libraries

    quiet_libraries()
    console = Console()
    tty = console.is_terminal and not quiet and not json_
    worker = os.environ.get("FBGEN_WORKER")  # a --devices worker: plain lines, tagged, even on a TTY
    tty = tty and not worker
    if quiet or json_:
        return console, tty, QuietProgress()
    return console, tty, RichProgress(console) if tty else LogProgress(name=f"fbgen[{worker}]" if worker else "fbgen")


def _brief(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": record["status"],
        "output": record["output"],
        "manifest": str(Path(record["output"]).with_suffix(".json")),
        "sha256": record["sha256"],
        "seed": record["seed"],
        "schedule": record["schedule"],
        "wall_s": record["wall_s"]["total"],
        "flops": record["flops"]["total"],
        "flops_ratio": record["flops"]["ratio"],
        "flops_executed": record["flops"]["executed"],
    }


@app.command(name="train-demo")
def train_demo(
    out: Annotated[Path, typer.Option("--out", help="Where to write large/, small/ and MODEL_CARD.md.")] = Path(
        "build/demo-pair"
    ),
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the whole recipe.")] = 0,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Reproduce the shipped demo pair (fbgen/demo/pair): VAE, then large and small transformer, on the procedural
    clips. An interrupted run resumes at its last finished phase.

    Example: fbgen train-demo --out build/demo-pair   (then: fbgen run configs/demo.yaml --set models.large=...)
    """

    def body() -> int:
        from fbgen.demo.train import Recipe, train_pair

        command = " ".join(["fbgen", "train-demo", "--out", str(out)] + (["--seed", str(seed)] if seed else []))
        train_pair(out, Recipe(seed=seed), device, log=(lambda _: None) if quiet else print, command=command)
        return 0

    _guarded(debug, body)


@app.command()
def plan(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="Run config (YAML).", show_default=False)],
    set_: SetOption = None,
    schedule: ScheduleOption = None,
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Show the resolved config, which model runs each step, FLOPs and memory — without loading any weights.

    Example: fbgen plan configs/wan2.1-14b-1.3b-lsl.yaml --set boundaries=[0.3,0.8]
    """

    def body() -> int:
        from fbgen.apps.reporting import plan_table, quiet_libraries, tflop
        from fbgen.config import load_config
        from fbgen.engine.memory import choose, gpu_budget, memory_plan, needs_choice
        from fbgen.engine.planning import make_plan, plan_flops_for, scheduler_differences
        from fbgen.engine.sources import Sources

        cfg = load_config(config, set_, schedule=schedule)
        quiet_libraries()
        sources = Sources.open(cfg, weights=False)
        scheduler, the_plan = make_plan(cfg, sources.family, sources.vae_config, sources.scheduler_config)
        flops = plan_flops_for(cfg, the_plan, sources.family, sources.configs, sources.vae_config)
        lines, shown = [], cfg.offload
        if needs_choice(cfg):
            budget = gpu_budget(cfg)
            cfg, why = choose(cfg, the_plan, sources, budget)
            lines.append(f"auto: {why}" + ("" if budget is not None else
                                            "; on a GPU its free memory decides (or set memory_budget)"))
        memory = memory_plan(cfg, the_plan, sources)
        lines = memory.lines(shown) + lines
        lines += sources.offline_notes()
        known = any(s.shipped for s in sources.transformers.values())  # offline: the scheduler config is not known
        notes = [] if known else scheduler_differences(scheduler, sources.scheduler_config)
        notes += sources.expert_notes(the_plan)
        experts = sources.experts and {"high_noise": sources.experts[0], "low_noise": sources.experts[1],
                                       "boundary_ratio": sources.expert_switch}  # fmt: skip
        if json_:
            data = {"config": cfg.to_dict(), "plan": [
                {"step": i, "model": m, "timestep": t, "sigma": s, "flops": f}
                for i, (m, t, s, f) in enumerate(zip(the_plan.models, the_plan.timesteps, the_plan.sigmas,
                                                     flops["per_step"]))
            ], "flops": {k: v for k, v in flops.items() if k != "per_step"},
                "memory": {**dataclasses.asdict(memory), "lines": lines},
                "scheduler": {"class": type(scheduler).__name__, "differs_from_checkpoint": notes},
                "experts": experts}  # fmt: skip
            print(json.dumps(data, indent=2))
            return 0
        console = Console()
        console.print(_config_table(cfg.to_dict()))
        console.print(plan_table(the_plan, flops["per_step"], flops))
        for m, f in flops["per_forward"].items():
            console.print(f"model {m}: {tflop(f)} TFLOP per forward (guidance {cfg.guidance_scale[m]})")
        console.print(f"FLOPs: {flops['convention']}")
        for line in lines:
            console.print(line, markup=False, highlight=False)
        if experts:
            console.print(f"experts of one checkpoint: {experts['high_noise']} (transformer, high noise) and "
                          f"{experts['low_noise']} (transformer_2, low noise), boundary_ratio "
                          f"{experts['boundary_ratio']}", markup=False, highlight=False)  # fmt: skip
        for line in notes:
            console.print(f"note: {line}", markup=False, highlight=False)
        return 0

    _guarded(debug, body)


def _config_table(data: dict[str, Any]) -> Table:
    table = Table(title="resolved config", show_header=False)
    for key, value in data.items():
        table.add_row(key, json.dumps(value, default=str) if not isinstance(value, str) else value)
    return table


@app.command()
def decode(
    latents: Annotated[
        Path, typer.Argument(metavar="LATENTS", help="A <name>.latents.safetensors a render wrote.", show_default=False)
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write (default: beside the latents).")] = None,
    png: Annotated[
        bool, typer.Option("--png", metavar="", help="Also write the frames as PNGs (<name>-frames/).")
    ] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    json_: JsonOption = False,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Turn saved final latents into a video with the VAE alone: the way out of a decode that ran out of memory
    after a long render (add `latents` to a config's `outputs:` to keep them).

    Example: fbgen decode outputs/a-red-fox-1a2b3c-7-LSL-20-40-n50.latents.safetensors
    """

    def body() -> int:
        from fbgen.engine.decode import decode_file

        written = decode_file(latents, out, ("mp4", "png") if png else ("mp4",), device)
        if json_:
            print(json.dumps({"exit_code": 0, "outputs": {k: str(v) for k, v in written.items()}}, indent=2))
        elif not quiet:
            for path in written.values():
                print(f"wrote {path}")
        return 0

    _guarded(debug, body)


class _PipeSafe(io.TextIOBase):
    """stdout that survives its reader going away (`fbgen run … | head`): once the pipe is closed, output goes
    nowhere and rendering goes on; no video is lost to a BrokenPipeError."""

    def __init__(self, stream: Any):
        self.stream, self.closed_pipe = stream, False

    def write(self, text: str) -> int:
        if not self.closed_pipe:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self.closed_pipe = True
        return len(text)

    def flush(self) -> None:
        if not self.closed_pipe:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self.closed_pipe = True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding


def main() -> None:
    sys.stdout = _PipeSafe(sys.stdout)
    try:
        app()
    finally:
        with contextlib.suppress(BrokenPipeError, ValueError):
            sys.stdout.flush()


if __name__ == "__main__":
    main()
