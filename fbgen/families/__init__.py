"""Model families: a spec and a stateless adapter each (the interface is `fbgen.families.base`)."""

from __future__ import annotations

from fbgen.families import demo, ltx, wan
from fbgen.families.base import FamilySpec

FAMILIES: dict[str, FamilySpec] = {spec.name: spec for spec in (wan.SPEC, ltx.SPEC, demo.SPEC)}
