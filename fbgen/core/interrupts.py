"""SIGTERM/SIGINT as one clean interruption, whenever it comes (start-up, imports, loading, denoising, writing).

The handler raises KeyboardInterrupt once and remembers it: a second signal while the first unwinds does not cut the
clean-up short, a library that swallows the exception cannot turn pre-emption into exit 0 (the flag still says
130), and loops check the flag between items. Installed by the CLI before its heavy imports.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

_interrupted = threading.Event()


def _raise(signum: int, frame: Any) -> None:
    if _interrupted.is_set():
        return  # already unwinding: let the clean-up finish
    _interrupted.set()
    raise KeyboardInterrupt


def _remember(signum: int, frame: Any) -> None:
    _interrupted.set()


def install(deferred: bool = False) -> None:
    """Route SIGTERM and SIGINT to one KeyboardInterrupt (main thread only, as Python requires). `deferred`: only
    remember the signal (while modules import: an exception there would leave them half-initialised); `check` then
    raises it where it is safe."""
    if threading.current_thread() is threading.main_thread():
        handler = _remember if deferred else _raise
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def interrupted() -> bool:
    return _interrupted.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if a signal came and something swallowed it."""
    if _interrupted.is_set():
        raise KeyboardInterrupt
