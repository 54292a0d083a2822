"""A job: everything about one video that may differ from the next one an engine renders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from fbgen.config import RunConfig, apply_changes, keys
from fbgen.families.base import Video


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
    """The config's prompts as jobs, each named as a .txt batch would name it; two prompts that would share a name
    under the `filename` template are refused before anything loads."""
    from fbgen.core.errors import BadInput
    from fbgen.engine.planning import make_plan
    from fbgen.families import FAMILIES
    from fbgen.outputs.naming import content_id, output_name, unique_ids

    tag = make_plan(config, FAMILIES[config.family])[1].tag()
    jobs, names = [], {}
    ids = unique_ids([content_id(p) for p in config.prompts])
    for index, (prompt, item_id) in enumerate(zip(config.prompts, ids)):
        name = output_name(config.filename, prompt=prompt, seed=config.seed, schedule=tag, steps=config.steps,
                           index=index, id=item_id)  # fmt: skip
        if name in names:
            raise BadInput(f"{config.source}: key 'filename': {config.filename!r} gives prompts {names[name] + 1} and "
                           f"{index + 1} the same output name {name!r}; include {{id}} in it")  # fmt: skip
        names[name] = index
        jobs.append(Job.of(config, prompt, name=name, index=index, id=item_id))
    return jobs
