"""Fidelity of a video to a reference video of the same seed (the LLL one): PSNR and SSIM always, through
torchmetrics; CLIP and DINO image-embedding similarity when local weights are configured (never downloaded).

    fbgen compare ... --metric-model clip=/models/clip-vit-large-patch14 --metric-model dino=/models/dinov2-base

LPIPS is not offered: its backbones (AlexNet/VGG) come only as torchvision downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from fbgen.core.errors import BadInput

EMBEDDERS = ("clip", "dino")
HOW_TO_ENABLE = (
    "CLIP/DINO similarity: off (no local weights); enable with --metric-model clip=DIR and/or --metric-model dino=DIR "
    "(transformers directories of a CLIP vision model / a DINOv2 model, with their image processor)"
)


def _tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def pixel_fidelity(frames: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of uint8 frames (F, H, W, 3) against the reference, over all frames."""
    a, b = _tensor(frames), _tensor(reference)
    psnr = peak_signal_noise_ratio(a, b, data_range=1.0).item()
    ssim = structural_similarity_index_measure(a, b, data_range=1.0).item()
    return {"psnr": min(psnr, 100.0), "ssim": ssim}  # identical videos: PSNR is infinite


class Embedder:
    """Frame embeddings from a local transformers model: CLIP's projected image embedding or DINOv2's CLS token."""

    def __init__(self, kind: str, path: str):
        from transformers import AutoImageProcessor, AutoModel, CLIPVisionModelWithProjection

        if kind not in EMBEDDERS:
            raise BadInput(f"--metric-model {kind}=...: unknown metric; valid: {', '.join(EMBEDDERS)}")
        if not Path(path).is_dir():
            raise BadInput(f"--metric-model {kind}={path}: not a local directory (weights are never downloaded)")
        self.kind = kind
        try:
            self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
            loader = CLIPVisionModelWithProjection if kind == "clip" else AutoModel
            self.model = loader.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
        except (OSError, ValueError) as e:
            raise BadInput(f"--metric-model {kind}={path}: cannot load ({str(e).splitlines()[0]})") from None

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        inputs = self.processor(images=list(frames), return_tensors="pt")
        out = self.model(**inputs)
        emb = out.image_embeds if self.kind == "clip" else out.last_hidden_state[:, 0]
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    def similarity(self, frames: np.ndarray, reference: np.ndarray) -> float:
        """Mean cosine similarity of corresponding frames."""
        return (self(frames) * self(reference)).sum(-1).mean().item()


def load_embedders(specs: list[str] | None) -> dict[str, Embedder]:
    """`clip=DIR`, `dino=DIR` → embedders."""
    embedders = {}
    for spec in specs or []:
        kind, sep, path = spec.partition("=")
        if not sep:
            raise BadInput(f"--metric-model {spec!r}: expected KIND=DIR, e.g. clip=/models/clip-vit-base-patch32")
        embedders[kind] = Embedder(kind, path)
    return embedders
