"""What the engine reports while it works; the CLI renders it as Rich progress or plain log lines."""

from __future__ import annotations

from typing import Any, Protocol

from fbgen.core.schedule import Plan


class Progress(Protocol):
    def phase(self, message: str) -> None: ...
    def item_start(self, index: int, total: int, name: str, plan: Plan) -> None: ...
    def step(self, index: int, model: str) -> None: ...
    def item_end(self, record: dict[str, Any]) -> None: ...


class NoProgress:
    def phase(self, message: str) -> None:
        pass

    def item_start(self, index: int, total: int, name: str, plan: Plan) -> None:
        pass

    def step(self, index: int, model: str) -> None:
        pass

    def item_end(self, record: dict[str, Any]) -> None:
        pass
