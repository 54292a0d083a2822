"""The family interface: what fbgen needs to know about a model family (`FamilySpec`), and the adapter every family
shares (`PipelineFamily`): the family's own diffusers pipeline holds the shared text encoder and VAE, and its methods
encode prompts and prepare noise, so fbgen's LLL is diffusers' result. A family adds `predict` and `decode`.

Adapters are stateless between calls: everything about one video (size, frame rate, seed's generator, the family's
own options) comes in as a `Video`. Adding a family is one module with a `SPEC` and an adapter class, and one line
in `fbgen.families.FAMILIES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from fbgen.core.errors import ModelError
from fbgen.core.jsonfile import read_json_object
from fbgen.core.sampler import Step

LatentShape = tuple[int, int, int]  # latent (frames, height, width)


@dataclass(frozen=True, kw_only=True)
class FamilySpec:
    """One family's rules and facts, checked and used before any weights load."""

    name: str
    adapter: Callable[[], type]  # the adapter class (a function, so the spec can precede the class in its module)
    size_multiple: int  # height and width must be divisible by this
    frame_step: int  # num_frames must be frame_step*k + 1
    min_steps: int = 1
    max_sequence_length: int  # prompt length the text encoder is padded to, unless a config says otherwise
    default_shift: float | None  # None: the family's own (dynamic) shift
    default_size: tuple[int, int, int]  # height, width, num_frames
    default_fps: int
    solvers: tuple[str, ...]  # the first is the default
    pair_keys: tuple[str, ...]  # transformer config keys the models of one run must share (one latent space)
    flops_keys: tuple[str, ...]  # transformer config keys the FLOPs formulas read
    vae_keys: tuple[str, ...]  # VAE config keys a model's own VAE must share with the run's
    latent_channels: tuple[str, str] | None = None  # (transformer key, VAE key) that must agree: text-to-video
    forward_flops: Callable[[Mapping[str, Any], LatentShape, int], int]  # (transformer config, latent, text tokens)
    block_flops: Callable[[Mapping[str, Any], LatentShape, int], dict[str, int]]  # per block unit, as above
    latent_shape: Callable[[Mapping[str, Any], int, int, int], LatentShape]  # (vae config, height, width, frames)
    # bytes a forward holds at its peak beyond the weights: (transformer config, latent, text tokens, itemsize)
    activation_bytes: Callable[[Mapping[str, Any], LatentShape, int, int], int]
    # bytes the VAE decode holds beyond its weights: (vae config, height, width, frames, tiled)
    decode_bytes: Callable[[Mapping[str, Any], int, int, int, bool], int]
    scheduler: Callable[..., Any]  # (sampling settings, vae config, checkpoint scheduler config, device) → scheduler
    components: Mapping[str, str]  # component → the class loaded when the checkpoint names none
    transformer: str = "transformer"  # default subfolder of a model letter
    text_subfolders: tuple[str, ...] = ("text_encoder", "tokenizer")
    vae_subfolders: tuple[str, ...] = ("vae",)
    own_classes: Mapping[str, type] = field(default_factory=dict)  # "module.Class" → the family's own (demo VAE)
    options: tuple[str, ...] = ()  # family-only config keys
    caches: tuple[str, ...] = ("first_block", "taylorseer")  # diffusers cache hooks that work on its transformer
    # the per-block modules that do a block's work (the group names the unit, as in the FLOPs formulas): what
    # TaylorSeer forecasts and what `fbgen.engine.work` counts. diffusers' default TaylorSeer pattern (`^blocks.*attn`)
    # matches no module of Wan or LTX (theirs are `attn1`, `attn2`), which would leave that hook a silent no-op
    block_units: str = r"blocks\.\d+\.(attn1|attn2|ffn)"
    default_models: tuple[tuple[str, str], ...] = ()  # (letter, path) used when a config declares no models
    default_config: Mapping[str, Any] = field(default_factory=dict)  # settings a config of this family leaves out
    view_scale: int = 1  # MP4s are written this many times larger (nearest) when native frames are tiny


@dataclass(frozen=True)
class Video:
    """What a family needs to know about the one video it is working on; nothing of it is kept between calls."""

    height: int
    width: int
    num_frames: int
    fps: int
    max_sequence_length: int
    options: Mapping[str, Any] = field(default_factory=dict)  # the family's own keys (LTX: decode_timestep, ...)


@dataclass(frozen=True)
class Weights:
    """Where one transformer's weights come from: a diffusers directory's subfolder, or a GGUF single file with
    that subfolder's config; `quantization` is a diffusers quantization config applied on load (torchao), or None."""

    root: Path
    subfolder: str
    file: Path | None = None
    quantization: Any = None


class Family(Protocol):
    """The adapter interface the engine calls. `cond` is whatever `encode` returned for a prompt."""

    spec: FamilySpec
    transformers: dict[str, torch.nn.Module]

    def encode(self, prompt: str, negative_prompt: str, cfg: bool, video: Video) -> Any: ...
    def noise(self, seed: int, video: Video) -> tuple[torch.Tensor, torch.Generator]: ...
    def predict(self, letter: str, cond: Any, latents: torch.Tensor, t: torch.Tensor, cfg: bool, step: Step | None,
                video: Video) -> tuple[torch.Tensor, torch.Tensor | None]: ...  # fmt: skip
    def decode(self, latents: torch.Tensor, video: Video, generator: torch.Generator) -> np.ndarray: ...


def model_index(root: Path) -> dict[str, Any]:
    """A checkpoint's `model_index.json` (components and pipeline settings such as Wan 2.2's `boundary_ratio`);
    empty without one."""
    path = root / "model_index.json"
    return read_json_object(path, str(root)) if path.is_file() else {}


def checkpoint_classes(root: Path) -> dict[str, tuple[str | None, str | None]]:
    """`model_index.json`'s (library, class) per component, as diffusers reads it; empty without one."""
    return {k: tuple(v) for k, v in model_index(root).items() if isinstance(v, list) and len(v) == 2}


def checkpoint_switch(root: Path) -> float | None:
    """Where a two-expert checkpoint (Wan 2.2 A14B) hands `transformer` over to `transformer_2`: its
    `boundary_ratio`, a sigma threshold compared as WanPipeline compares it (None when it has none)."""
    ratio = model_index(root).get("boundary_ratio")
    if ratio is None:
        return None
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ModelError(f"{root}: model_index.json has boundary_ratio {ratio!r}; expected a number in (0, 1)")
    return float(ratio)


_BASES = {"diffusers": ("diffusers", "ModelMixin"), "transformers": ("transformers", "PreTrainedModel")}


def component_class(spec: FamilySpec, root: Path, component: str, kind: str | None = None) -> type:
    """The class that loads `component` of the checkpoint at `root`: the one its `model_index.json` names, when that
    is a model or tokenizer class of diffusers or transformers (or the family's own), else the family's default for
    `kind` (the component's own name unless given: `transformer_2` is a `transformer`).
    Nothing is imported by an arbitrary name and no remote code runs."""
    library, name = checkpoint_classes(root).get(component, (None, None))
    if library is None or name is None:
        library, name = spec.components[kind or component].rsplit(".", 1)
    qualified = f"{library}.{name}"
    if qualified in spec.own_classes:
        return spec.own_classes[qualified]
    if library in _BASES:
        import transformers

        cls = getattr(importlib.import_module(library), name, None)
        bases = (importlib.import_module("diffusers").ModelMixin, transformers.PreTrainedModel,
                 transformers.PreTrainedTokenizerBase)  # fmt: skip
        if cls is transformers.AutoTokenizer or (isinstance(cls, type) and issubclass(cls, bases)):
            return cls
    raise ModelError(f"{root}: model_index.json names {library}.{name} for {component}, which is not a model or "
                     f"tokenizer class of diffusers or transformers; fbgen loads no other code")  # fmt: skip


class PipelineFamily:
    """The shared adapter: the family's pipeline holding the shared text encoder and VAE, one transformer per
    schedule letter. Subclasses set `spec`, `pipeline_class`, `prompt_class` and write `predict` and `decode`."""

    spec: FamilySpec
    pipeline_class: Any
    prompt_class: Any  # built from what the pipeline's `encode_prompt` returns
    vae_dtype: torch.dtype | None = None  # None: the run's dtype

    def __init__(self, transformers: Mapping[str, torch.nn.Module], tokenizer: Any, text_encoder: Any, vae: Any,
                 device: str | torch.device):  # fmt: skip
        self.transformers = dict(transformers)
        self.device = torch.device(device)
        self.pipe = self.pipeline_class(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=None,
                                        transformer=next(iter(self.transformers.values()), None))  # fmt: skip

    @classmethod
    def load(cls, transformers: Mapping[str, Weights], text: Path | None, vae: Path, device: str,
             dtype: torch.dtype, place: str | None = None) -> PipelineFamily:  # fmt: skip
        """Every component from local files (safetensors, or GGUF for a transformer), each with the class its
        checkpoint names, quantized as diffusers quantizes on load. Transformers load onto `place` when given (no
        full copy in host memory first), else the CPU (`Residency` places them); a GPU's text encoder loads onto
        it. Without `text`, the text encoder is not loaded (`fbgen decode` needs the VAE alone)."""
        models = {}
        for letter, w in transformers.items():
            model_class = component_class(cls.spec, w.root, w.subfolder, "transformer")
            if w.file is not None:  # diffusers' single-file loader: the checkpoint's own keys, its config from root
                from diffusers import GGUFQuantizationConfig

                model = model_class.from_single_file(str(w.file), config=str(w.root), subfolder=w.subfolder,
                                                     quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
                                                     torch_dtype=dtype)  # fmt: skip
            else:
                model = model_class.from_pretrained(w.root, subfolder=w.subfolder, torch_dtype=dtype,
                                                    use_safetensors=True, quantization_config=w.quantization,
                                                    device_map=place)  # fmt: skip
            models[letter] = model.eval()
        tokenizer = text_encoder = None
        if text is not None:
            tokenizer = component_class(cls.spec, text, "tokenizer").from_pretrained(text, subfolder="tokenizer")
            on_gpu = str(device) if torch.device(device).type == "cuda" else None
            text_encoder = cls.load_text_encoder(text, dtype, on_gpu).to(device)
        vae_model = component_class(cls.spec, vae, "vae").from_pretrained(
            vae, subfolder="vae", torch_dtype=cls.vae_dtype or dtype, use_safetensors=True
        ).eval()  # fmt: skip
        return cls(models, tokenizer, text_encoder, vae_model.to(device), device)

    @classmethod
    def load_text_encoder(cls, root: Path, dtype: torch.dtype, place: str | None = None) -> torch.nn.Module:
        """The text encoder, onto `place` directly when given (UMT5-XXL is 11 GB: no host copy first)."""
        encoder = component_class(cls.spec, root, "text_encoder")
        return encoder.from_pretrained(root, subfolder="text_encoder", torch_dtype=dtype, use_safetensors=True,
                                       device_map=place).eval()  # fmt: skip

    @property
    def has_text_encoder(self) -> bool:
        return self.pipe.text_encoder is not None

    def set_text_encoder(self, encoder: torch.nn.Module | None) -> None:
        """Attach (or, with None, drop) the text encoder: it is dead weight once every prompt is encoded."""
        self.pipe.text_encoder = None if encoder is None else encoder.to(self.device)

    @torch.no_grad()
    def encode(self, prompt: str, negative_prompt: str, cfg: bool, video: Video) -> Any:
        """The pipeline's own `encode_prompt` (negative embeddings only with CFG)."""
        out = self.pipe.encode_prompt(prompt=prompt, negative_prompt=negative_prompt, do_classifier_free_guidance=cfg,
                                      max_sequence_length=video.max_sequence_length, device=self.device)  # fmt: skip
        return self.prompt_class(*out)

    def noise(self, seed: int, video: Video) -> tuple[torch.Tensor, torch.Generator]:
        """The pipeline's `prepare_latents` from a CPU generator (the same seed gives the same video on any device);
        the generator comes back because some pipelines draw from it again (LTX's decode noise)."""
        generator = torch.Generator("cpu").manual_seed(seed)
        channels = next(iter(self.transformers.values())).config.in_channels
        latents = self.pipe.prepare_latents(1, channels, video.height, video.width, video.num_frames, torch.float32,
                                            self.device, generator)  # fmt: skip
        return latents, generator


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """The video processor's [0, 1] floats → uint8 frames, rounded as the MP4 writer expects."""
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)
