"""Deterministic, safe output names: prompt text never becomes a path, only a sanitised slug of it."""

from __future__ import annotations

import hashlib
import re

SLUG_WORDS_CHARS = 40


def slugify(prompt: str) -> str:
    """First words of the prompt in [a-z0-9-] (≤ 40 chars) plus 8 hex of its sha1, so distinct prompts never collide."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    head = ""
    for word in words:
        if len(head) + len(word) + 1 > SLUG_WORDS_CHARS:
            break
        head = f"{head}-{word}" if head else word
    digest = hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:8]
    return f"{head}-{digest}" if head else digest


def output_name(template: str, *, prompt: str, seed: int, schedule: str, steps: int, index: int) -> str:
    """Fill the `filename` template; anything outside [A-Za-z0-9._-] becomes '_' and the name is length-limited."""
    name = template.format(slug=slugify(prompt), seed=seed, schedule=schedule, steps=steps, index=index)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:180]
    return name or slugify(prompt)
