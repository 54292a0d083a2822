"""A YAML file (plus `--set a.b=v` overrides and CLI options) → raw mapping → `validate`.

Read with `yaml.safe_load`'s rules, stricter: a key given twice is refused (YAML would keep the last silently), and
so is a document whose aliases expand beyond a small size (a "billion laughs" file would otherwise blow up in the
manifest). A file that is not UTF-8 is one line, as any other bad input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from fbgen.config.checkpoint import checkpoint_switch_of
from fbgen.config.schema import MODEL_ALIASES, RunConfig
from fbgen.config.validate import show, validate
from fbgen.core.errors import BadInput

MAX_NODES = 10_000  # scalars, lists and mappings of the document with every alias expanded


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            name = self.construct_object(key_node, deep=True)
            if isinstance(name, (str, int, float, bool)) and name in seen:
                raise BadInput(f"{self.name}: line {key_node.start_mark.line + 1}: key {show(name)} is given twice "
                               f"(also line {seen[name]})")  # fmt: skip
            if isinstance(name, (str, int, float, bool)):
                seen[name] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, budget: int) -> int:
    """Nodes of the document with aliases expanded, counting no further than `budget`."""
    count, stack = 0, [node]
    while stack and count <= budget:
        current = stack.pop()
        count += 1
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            stack.extend(n for pair in current.value for n in pair)
    return count


def parse_yaml(text: str, name: str) -> Any:
    loader = _StrictLoader(text)
    loader.name = name
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_NODES) > MAX_NODES:
            raise BadInput(f"{name}: the document expands to more than {MAX_NODES} values (anchors and aliases); "
                           "a run config is a few dozen keys")  # fmt: skip
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise BadInput(f"{name}:{where} is not valid YAML ({getattr(e, 'problem', None) or e})") from None
    finally:
        loader.dispose()


def load_config(path: str | os.PathLike, overrides: list[str] | None = None, **cli: Any) -> RunConfig:
    """Read a YAML file, apply `--set` overrides and CLI options (`schedule=`, `output_dir=`), validate."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise BadInput(f"{path}: cannot read config ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 text (byte {e.start}); save the config as UTF-8") from None
    raw = parse_yaml(text, str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadInput(f"{path}: a run config must be a YAML mapping of keys, got {type(raw).__name__}")
    overridden = set()
    for item in overrides or []:
        overridden.add(apply_override(raw, item))
    for name, value in cli.items():
        if value is not None:
            raw[name] = value
            overridden.add(name)
    return validate(raw, str(path), overridden, read_switch=checkpoint_switch_of)


def apply_override(raw: dict, item: str) -> str:
    """`a.b=value`: the value is parsed as YAML (so `steps=30` is an int, `boundaries=[0.3,0.8]` a list).

    Returns the top-level key it set, so errors can name `--set KEY` rather than the file."""
    name, sep, text = item.partition("=")
    if not sep or not name.strip():
        raise BadInput(f"--set {show(item)}: expected key=value, e.g. --set steps=30 or --set models.S=path/to/model")
    try:
        value = parse_yaml(text, f"--set {name.strip()}")
    except BadInput:
        value = text
    parts = name.strip().split(".")
    if parts[0] in ("models", "guidance_scale") and len(parts) == 2:
        if isinstance(raw.get(parts[0]), dict):  # `small:` in the file and `--set models.S=` mean one model
            raw[parts[0]] = {MODEL_ALIASES.get(str(k).lower(), k): v for k, v in raw[parts[0]].items()}
        parts[1] = MODEL_ALIASES.get(parts[1].lower(), parts[1])
    if parts == ["prompt"] or parts == ["prompts"]:  # one replaces the other
        raw.pop("prompts" if parts == ["prompt"] else "prompt", None)
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return parts[0]
