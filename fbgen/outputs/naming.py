"""Deterministic, safe output names: prompt text never becomes a path, only a sanitised slug of it, and every item's
name carries its id by default, so two items never share a file."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

SLUG_WORDS_CHARS = 40


def content_id(prompt: str, overrides: Mapping[str, Any] | None = None) -> str:
    """An item's id when none is given: 12 hex of the prompt and its overrides, stable across files and layouts."""
    text = prompt.strip() + (json.dumps(overrides, sort_keys=True) if overrides else "")
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def unique_ids(ids: list[str]) -> list[str]:
    """The same prompt twice is two items: the second becomes `<id>-2`, still stable when lines are appended."""
    seen: set[str] = set()
    out = []
    for base in ids:
        item_id, k = base, 1
        while item_id in seen:
            k += 1
            item_id = f"{base}-{k}"
        seen.add(item_id)
        out.append(item_id)
    return out


def slugify(prompt: str) -> str:
    """The first words of the prompt in [a-z0-9-], at most 40 characters: readable, never a path (the item id, not the
    slug, makes a name unique)."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    head = ""
    for word in words:
        if len(head) + len(word) + 1 > SLUG_WORDS_CHARS:
            break
        head = f"{head}-{word}" if head else word
    return head or "prompt"


def output_name(template: str, *, prompt: str, seed: int, schedule: str, steps: int, index: int, id: str) -> str:
    """Fill the `filename` template; anything outside [A-Za-z0-9._-] becomes '_' and the name is length-limited."""
    name = template.format(slug=slugify(prompt), seed=seed, schedule=schedule, steps=steps, index=index, id=id)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:180]
    return name or id
