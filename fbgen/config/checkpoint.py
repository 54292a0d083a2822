"""The one checkpoint fact a config's defaults depend on: a two-expert checkpoint's `boundary_ratio` (Wan 2.2 A14B
switches `transformer` → `transformer_2` there), read from its `model_index.json` the way diffusers finds it: a
local directory, or a hub id through the Hugging Face cache (`HF_HUB_OFFLINE=1`: the cache only). Only that small
file is fetched; the weights come when the engine opens.
"""

from __future__ import annotations

import os
from pathlib import Path

from fbgen.config.schema import ModelRef
from fbgen.core.errors import ModelError
from fbgen.families.base import checkpoint_switch
from fbgen.families.shipped import shipped


def checkpoint_switch_of(ref: ModelRef) -> float | None:
    local = Path(ref.id).expanduser()
    if local.is_dir():
        return checkpoint_switch(local)
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(ref.id, "model_index.json", revision=ref.revision))
    except Exception as e:  # hub errors come in many classes; all mean the same here
        known = shipped(ref.id)
        if known is not None:  # fbgen ships this checkpoint's model_index.json: the switch is known offline
            return checkpoint_switch(known)
        offline = " (HF_HUB_OFFLINE is set: only the local cache is used)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ModelError(f"{ref.id}: cannot read model_index.json for its boundary_ratio{offline}: "
                         f"{type(e).__name__}: {str(e).splitlines()[0]}; or set boundaries") from e  # fmt: skip
    return checkpoint_switch(path.parent)
