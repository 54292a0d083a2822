"""Tiny random-weight Wan 2.1 and LTX pairs, saved in diffusers format, for tests (the trained demo pair is
`fbgen/demo/pair`, made by `fbgen train-demo`).

There is no hub on the machines fbgen is developed on, so these stand in for the real checkpoints: they are
built from diffusers/transformers configs, saved with `save_pretrained` (safetensors) and loaded back through the
exact path a hub id or a local directory takes. Their weights are random: the videos they make are noise.

    python -m fbgen.apps.tiny DIR   # writes DIR/wan-large and DIR/wan-small
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

TEXT_DIM = 32
VOCAB = (
    "<pad> </s> <unk> a an the of and in on with at to over under from by red green blue yellow white black "
    "orange purple cat dog bird fish horse car boat ball cube circle square triangle star tree house sea "
    "river mountain city street forest sky sun moon cloud rain snow night day slowly quickly runs flies "
    "swims moves jumps rolls falls left right up down big small tiny large bright dark camera video"
).split()

LARGE = dict(num_layers=2, num_attention_heads=2, attention_head_dim=16, ffn_dim=64)
SMALL = dict(num_layers=1, num_attention_heads=2, attention_head_dim=8, ffn_dim=32)


def tiny_tokenizer():
    """A word-level tokenizer (no files to fetch) wrapped the way transformers loads any fast tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def tiny_text_encoder():
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(
        vocab_size=len(VOCAB), d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    return UMT5EncoderModel(config).eval()


def tiny_vae():
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan(
        base_dim=4, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    return vae.eval()


def tiny_transformer(**sizes):
    from diffusers import WanTransformer3DModel

    config = dict(
        patch_size=(1, 2, 2), in_channels=16, out_channels=16, text_dim=TEXT_DIM, freq_dim=32,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )  # fmt: skip
    return WanTransformer3DModel(**{**config, **sizes}).eval()


LTX_LARGE = dict(num_layers=2, num_attention_heads=4, attention_head_dim=8)
LTX_SMALL = dict(num_layers=1, num_attention_heads=2, attention_head_dim=8)


def tiny_t5():
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=len(VOCAB), d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1)  # fmt: skip
    return T5EncoderModel(config).eval()


def tiny_ltx_vae(latent_channels: int = 8, timestep_conditioning: bool = True):
    """LTX 0.9.5+-shaped VAE (32x spatial, 8x temporal compression, timestep-conditioned decoder), 8 channels wide."""
    from diffusers import AutoencoderKLLTXVideo

    vae = AutoencoderKLLTXVideo(
        latent_channels=latent_channels, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False), decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1), timestep_conditioning=timestep_conditioning, patch_size=4, patch_size_t=1,
        encoder_causal=True, decoder_causal=False,
    )  # fmt: skip
    return vae.eval()


def tiny_ltx_transformer(latent_channels: int = 8, **sizes):
    from diffusers import LTXVideoTransformer3DModel

    width = sizes.get("num_attention_heads", 2) * sizes.get("attention_head_dim", 8)
    return LTXVideoTransformer3DModel(in_channels=latent_channels, out_channels=latent_channels, patch_size=1,
                                      patch_size_t=1, cross_attention_dim=width, caption_channels=TEXT_DIM,
                                      **sizes).eval()  # fmt: skip


def build_tiny_ltx(root: str | Path, seed: int = 0, latent_channels: int = 8) -> dict[str, Path]:
    """Write a tiny large/small LTX-Video pair (full diffusers pipeline directories sharing T5 and VAE)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline

    from fbgen.families.ltx import SCHEDULER

    root = Path(root)
    torch.manual_seed(seed)
    vae = tiny_ltx_vae(latent_channels)
    shared = dict(tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(), vae=vae)
    paths = {}
    for name, sizes in (("large", LTX_LARGE), ("small", LTX_SMALL)):
        pipe = LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
                           transformer=tiny_ltx_transformer(latent_channels, **sizes), **shared)  # fmt: skip
        paths[name] = root / f"ltx-{name}"
        pipe.save_pretrained(paths[name], safe_serialization=True)
    return paths


def build_tiny_wan(root: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write a tiny large/small Wan pair (full diffusers pipeline directories sharing text encoder and VAE)."""
    from diffusers import WanPipeline

    from fbgen.core.solvers import make_scheduler

    root = Path(root)
    torch.manual_seed(seed)
    shared = dict(tokenizer=tiny_tokenizer(), text_encoder=tiny_text_encoder(), vae=tiny_vae())
    paths = {}
    for name, sizes in (("large", LARGE), ("small", SMALL)):
        pipe = WanPipeline(scheduler=make_scheduler("unipc", 3.0), transformer=tiny_transformer(**sizes), **shared)
        paths[name] = root / f"wan-{name}"
        pipe.save_pretrained(paths[name], safe_serialization=True)
    return paths


def build_tiny_wan22(root: str | Path, seed: int = 1, boundary_ratio: float = 0.875) -> Path:
    """Write a tiny Wan 2.2 A14B-layout repository: `transformer` (high-noise expert) and `transformer_2` (low-noise
    expert) beside one text encoder and VAE, `boundary_ratio` in model_index.json; the experts are shaped like the
    tiny Wan large model, so a tiny Wan small model pairs with them as the 1.3B pairs with the A14B experts."""
    from diffusers import WanPipeline

    from fbgen.core.solvers import make_scheduler

    root = Path(root)
    torch.manual_seed(seed)
    pipe = WanPipeline(tokenizer=tiny_tokenizer(), text_encoder=tiny_text_encoder(), vae=tiny_vae(),
                       scheduler=make_scheduler("unipc", 12.0), transformer=tiny_transformer(**LARGE),
                       transformer_2=tiny_transformer(**LARGE), boundary_ratio=boundary_ratio)  # fmt: skip
    pipe.save_pretrained(root, safe_serialization=True)
    return root


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "build/demo-models")
    if (root / "wan-large" / "model_index.json").exists() and (root / "wan-small" / "model_index.json").exists():
        print(f"tiny random-weight Wan pair already at {root}")
        return
    paths = build_tiny_wan(root)
    print(f"wrote tiny random-weight Wan pair (NOT trained): {', '.join(map(str, paths.values()))}")


if __name__ == "__main__":
    main()
