"""fbgen: FlowBlending — stage-aware large/small/large sampling for open video diffusion models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fbgen")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
