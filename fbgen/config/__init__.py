"""The run config: one declaration (`schema`), pure validation (`validate`), YAML and `--set` (`loading`)."""

from fbgen.config.loading import load_config
from fbgen.config.schema import ModelRef, RunConfig, keys
from fbgen.config.validate import apply_changes, cache_hook, validate

__all__ = ["ModelRef", "RunConfig", "apply_changes", "cache_hook", "keys", "load_config", "validate"]
