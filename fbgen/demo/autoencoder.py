"""The demo pair's video autoencoder: small, fast to train, and laid out like Wan's VAE.

Wan's `AutoencoderKLWan` at toy width learned only the background in 250 steps (8 minutes) on 2 CPU cores, while
a plain convolutional autoencoder of the same compression draws the objects after 200 steps (under a minute). So
the demo pair uses this one, with the Wan VAE's interface and latent layout, and everything else of the Wan path
(transformer, scheduler, text encoder, `WanPipeline`'s own methods) unchanged:

- causal temporal compression as in Wan: latent frame 0 encodes frame 0 alone, each further latent frame the next
  `scale_factor_temporal` frames (stacked on channels; Wan: 4, the demo pair: 2); `scale_factor_spatial` spatial
  compression (Wan: 8, the demo pair: 4); `z_dim` channels;
- `encode(x).latent_dist.mode()` / `decode(z).sample` on videos in [-1, 1], decode clamped like Wan's;
- `latents_mean` / `latents_std` and `scale_factor_temporal` / `scale_factor_spatial` in its config, where
  `WanPipeline` reads them.

With `coordinates` set, the last two of the `z_dim` latent channels are not learned: they hold each latent pixel's
x and y (a fixed ramp from -coordinates to coordinates, the same in every clip), and decoding ignores them. A Wan
token otherwise has no absolute position (RoPE only weights attention by offsets), and a demo-sized transformer
trained on a CPU did not learn to put a named object where its caption says without it (docs/BENCHMARKS.md, "Placing
a named object at all": 43-44% placed without, 100% with).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class _Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        conv = (nn.Conv2d(width, width, 3, 1, 1) for _ in range(2))
        self.body = nn.Sequential(nn.SiLU(), next(conv), nn.SiLU(), next(conv))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _encoder(channels: int, width: int, z_dim: int, spatial: int, blocks: int) -> nn.Sequential:
    """Space-to-depth by the spatial factor (each latent pixel sees exactly its own patch), then residual blocks at
    latent resolution and a 1x1 projection to z: cheap on a CPU, and sharp edges and 2-pixel stripes survive."""
    return nn.Sequential(nn.PixelUnshuffle(spatial), nn.Conv2d(channels * spatial**2, width, 3, 1, 1),
                         *(_Residual(width) for _ in range(blocks)), nn.SiLU(), nn.Conv2d(width, z_dim, 1))  # fmt: skip


def _decoder(z_dim: int, width: int, channels: int, spatial: int, blocks: int) -> nn.Sequential:
    """The mirror: residual blocks at latent resolution, then depth-to-space back to pixels."""
    return nn.Sequential(nn.Conv2d(z_dim, width, 3, 1, 1), *(_Residual(width) for _ in range(blocks)), nn.SiLU(),
                         nn.Conv2d(width, channels * spatial**2, 3, 1, 1), nn.PixelShuffle(spatial))  # fmt: skip


def coordinate_ramps(like: torch.Tensor, amplitude: float) -> torch.Tensor:
    """Two channels shaped like `like` (B, C, F, h, w) in all but C: each latent pixel's x, then its y, from
    -amplitude to amplitude."""
    b, _, f, h, w = like.shape
    x = torch.linspace(-amplitude, amplitude, w, dtype=like.dtype, device=like.device)
    y = torch.linspace(-amplitude, amplitude, h, dtype=like.dtype, device=like.device)
    grid = torch.stack([x.view(1, w).expand(h, w), y.view(h, 1).expand(h, w)])
    return grid[None, :, None].expand(b, 2, f, h, w)


class CausalFrameAutoencoder(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        z_dim: int = 16,
        width: int = 96,
        blocks: int = 2,
        scale_factor_temporal: int = 2,
        scale_factor_spatial: int = 4,
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
        coordinates: float = 0.0,
    ):
        super().__init__()
        if latents_mean is None or latents_std is None:
            self.register_to_config(latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim)
        s, group, learned = scale_factor_spatial, scale_factor_temporal, self.learned_channels
        self.encode_first, self.encode_group = (_encoder(c, width, learned, s, blocks) for c in (3, 3 * group))
        self.decode_first, self.decode_group = (_decoder(learned, width, c, s, blocks) for c in (3, 3 * group))

    @property
    def learned_channels(self) -> int:
        """The latent channels the networks make and read: all but the two coordinate ramps, if any."""
        return self.config.z_dim - 2 if self.config.coordinates else self.config.z_dim

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        """(B, 3, 1 + t·k, H, W) → a deterministic posterior over (B, z, 1 + k, H/s, W/s), t and s the config's
        temporal and spatial factors."""
        b, c, f, h, w = x.shape
        group = self.config.scale_factor_temporal
        frames = [self.encode_first(x[:, :, 0])[:, None]]
        if f > 1:  # a single frame (an image) is the first latent frame alone, as in Wan's VAE
            groups = x[:, :, 1:].reshape(b, c, (f - 1) // group, group, h, w).permute(0, 2, 1, 3, 4, 5)
            frames.append(self.encode_group(groups.reshape(-1, c * group, h, w)).unflatten(0, (b, (f - 1) // group)))
        mean = torch.cat(frames, dim=1).transpose(1, 2)
        if self.config.coordinates:
            mean = torch.cat([mean, coordinate_ramps(mean, self.config.coordinates)], dim=1)
        posterior = DiagonalGaussianDistribution(torch.cat([mean, torch.zeros_like(mean)], 1), deterministic=True)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode_unclamped(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z, 1 + k, h, w) → (B, 3, 1 + t·k, s·h, s·w), not clamped (training needs the gradient everywhere)."""
        b, _, n, _, _ = z.shape
        group = self.config.scale_factor_temporal
        z = z[:, : self.learned_channels]
        first = self.decode_first(z[:, :, 0])
        rest = self.decode_group(z[:, :, 1:].transpose(1, 2).flatten(0, 1))
        h, w = rest.shape[-2:]
        rest = rest.reshape(b, n - 1, 3, group, h, w).permute(0, 2, 1, 3, 4, 5).reshape(b, 3, (n - 1) * group, h, w)
        return torch.cat([first[:, :, None], rest], dim=2)

    def decode(self, z: torch.Tensor, return_dict: bool = True):
        video = self.decode_unclamped(z).clamp(-1.0, 1.0)
        return DecoderOutput(sample=video) if return_dict else (video,)
