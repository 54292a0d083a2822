"""fbgen: FlowBlending — stage-aware large/small/large sampling for open video diffusion models."""

__version__ = "0.2.0"  # the one place the version is written: pyproject.toml reads it (a same-named folder or a
# stale install's metadata cannot change what a running fbgen reports)

__all__ = ["__version__"]
