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


EXIT_OK, EXIT_ITEMS_FAILED, EXIT_BAD_INPUT, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
