"""The README's first picture: `make demo`'s LSL videos with LLL and SSS from the same seeds beside them.

    python -m fbgen.demo.picture --out docs/demo-strip.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fbgen.apps.compare import RunSpec, variant
from fbgen.config import load_config
from fbgen.engine.engine import Engine
from fbgen.engine.job import config_jobs
from fbgen.families.demo import CONFIG
from fbgen.outputs.sheets import contact_sheet

RUNS = ("LLL", "LSL", "SSS")


def picture(config_path: str | Path, out: str | Path, columns: int = 5) -> Path:
    """Per prompt of the config, a row per run (its FLOPs relative to LLL in the label), from the config's seed."""
    config = load_config(config_path)
    engine = Engine.open(config)
    jobs = config_jobs(config)
    rows = {}
    for n, (job, cond) in enumerate(zip(jobs, engine.encode(jobs)), 1):
        reference = None
        for run in RUNS:
            one = variant(job, RunSpec(run, run, config.boundaries))
            denoised = engine.denoise(one, cond)
            flops = engine.flops(one, denoised.plan)["total"]
            reference = reference or flops
            label = f"{n}. {run}, {flops / reference:.2f}x the FLOPs" + (f": {job.prompt}" if run == RUNS[0] else "")
            rows[label] = engine.decode(one, denoised)
    return contact_sheet(rows, out, columns)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--out", default="docs/demo-strip.png")
    args = parser.parse_args(argv)
    print(f"wrote {picture(args.config, args.out)}")


if __name__ == "__main__":
    main()
