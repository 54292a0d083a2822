"""A job: everything about one video that may differ from the next one an engine renders."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from fbgen.config import RunConfig, apply_changes, keys
from fbgen.core.errors import BadInput
from fbgen.engine.planning import make_plan
from fbgen.families import FAMILIES
from fbgen.families.base import Video
from fbgen.outputs.naming import content_id, output_name, unique_ids


@dataclass(frozen=True)
class Job:
    """One video: prompt, seed, size, schedule and the rest of the config's per-job keys (`keys("job")`), and where
    it goes. Built from a validated config (`Job.of`), so a job is valid by construction; `changed` checks changes
    as the config file's own keys are checked."""

    prompt: str
    negative_prompt: str
    seed: int
    height: int
    width: int
    num_frames: int
    fps: int
    schedule: str
    boundaries: tuple[float, ...]
    boundary_unit: str
    steps: int
    solver: str
    shift: float | None
    guidance_scale: Mapping[str, float]
    max_sequence_length: int
    decode_timestep: float | None
    decode_noise_scale: float | None
    output_dir: str
    filename: str
    outputs: tuple[str, ...]
    crf: int
    name: str | None = None  # the output name; None: from the `filename` template
    index: int = 0  # `{index}` in names: the position in the prompts list or file
    id: str | None = None  # `{id}` in names: the batch item's id (default: from the prompt)
    config: RunConfig = field(default=None, compare=False, repr=False)  # type: ignore[assignment]  # for manifests

    @classmethod
    def of(cls, config: RunConfig, prompt: str | None = None, seed: int | None = None, **extra: Any) -> Job:
        """The job for one of the config's prompts (the first by default)."""
        values = {f.name: getattr(config, f.name) for f in fields(cls) if f.name in keys("job") and f.name != "seed"}
        prompt = config.prompts[0] if prompt is None else prompt
        return cls(prompt=prompt, seed=config.seed if seed is None else seed, config=config, **values, **extra)

    def changed(self, source: str = "<job>", **changes: Any) -> Job:
        """This job with per-job keys changed (a compare variant, a batch item's overrides), validated. Its output
        name is made again from the `filename` template (it may name the schedule, seed or steps)."""
        config = apply_changes(self.config, {"prompt": self.prompt, **changes}, source)
        own = {k: getattr(self, k) for k in ("index", "id")}
        seed = changes.get("seed", self.seed)
        return Job.of(config, self.prompt, seed, **own)

    @property
    def video(self) -> Video:
        """What the family adapter needs of this job."""
        options = {"decode_timestep": self.decode_timestep, "decode_noise_scale": self.decode_noise_scale}
        return Video(self.height, self.width, self.num_frames, self.fps, self.max_sequence_length, options)

    def uses_cfg(self) -> bool:
        return any(self.guidance_scale[m] > 1.0 for m in set(self.schedule))


def config_jobs(config: RunConfig) -> list[Job]:
    """The config's prompts as jobs, with ids and names as a .txt batch gives them."""
    ids = unique_ids([content_id(p) for p in config.prompts])
    jobs = [Job.of(config, prompt, index=i, id=item_id) for i, (prompt, item_id) in enumerate(zip(config.prompts, ids))]
    return name_jobs(jobs, config.source, "prompts", lambda job: job.index + 1)


def name_jobs(jobs: list[Job], source: str, what: str, position: Callable[[Job], int]) -> list[Job]:
    """Each job named from its `filename` template (`{schedule}` is the plan's tag, switch steps included); two jobs
    that would share a name are refused before anything loads, naming both (`what` and `position`: "lines", 5)."""
    tags: dict[tuple, str] = {}
    owners: dict[str, Job] = {}
    named = []
    for job in jobs:
        family = job.config.family
        key = (family, job.schedule, job.boundaries, job.boundary_unit, job.steps, job.solver, job.shift)
        if key not in tags:
            tags[key] = make_plan(job, FAMILIES[family])[1].tag()
        name = job_name(job, tags[key])
        if name in owners:
            raise BadInput(f"{source}: key 'filename': {job.filename!r} gives {what} {position(owners[name])} and "
                           f"{position(job)} the same output name {name!r}; include {{id}} in it")  # fmt: skip
        owners[name] = job
        named.append(replace(job, name=name))
    return named


def job_name(job: Job, tag: str) -> str:
    """The `filename` template filled for a job whose plan has the given tag."""
    return output_name(job.filename, prompt=job.prompt, seed=job.seed, schedule=tag, steps=job.steps,
                       index=job.index, id=job.id or content_id(job.prompt))  # fmt: skip
