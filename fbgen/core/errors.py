"""Errors a user can act on. Each carries the exit code the CLI returns (see SPEC.md)."""

from __future__ import annotations


class FbgenError(Exception):
    """A failure reported to the user as one line, without a traceback."""

    exit_code = 1


class BadInput(FbgenError):
    """Config, prompts file or CLI usage is wrong: exit 2, nothing written."""

    exit_code = 2


class ModelError(FbgenError):
    """A model is missing, unreadable or incompatible with its pair: exit 3."""

    exit_code = 3


class DiskFull(FbgenError):
    """The output storage is full: the batch stops (exit 1); nothing truncated is left under a final name."""

    exit_code = 1


class WriteError(FbgenError):
    """A video could not be written or did not decode back whole: that item fails, its partial file is removed."""

    exit_code = 1


EXIT_OK, EXIT_ITEMS_FAILED, EXIT_BAD_INPUT, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
