"""Architecture configs of the checkpoints the shipped run configs name, so `fbgen plan` (FLOPs, memory, the Wan 2.2
switch) works with no network and no hub cache. Only JSON configs, never weights; used only when the hub cannot
be reached, and the plan says so.

They were written from the published architectures (the numbers in DESIGN.md and the model cards) and diffusers'
class defaults on a machine without hub access, not downloaded: every file carries `_fbgen_note` saying so. The
LTX VAE is the 0.9.1 layout from diffusers' conversion script (the 0.9.5+ VAE shares its compression ratios, which
is what planning reads). Regenerate with `python -m fbgen.families.shipped`.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).parent / "known"
NOTE = "written by fbgen from the published architecture for offline planning; not a copy of the hub file"

WAN_TRANSFORMER = dict(
    _class_name="WanTransformer3DModel", added_kv_proj_dim=None, attention_head_dim=128, cross_attn_norm=True,
    eps=1e-6, freq_dim=256, image_dim=None, in_channels=16, out_channels=16, patch_size=[1, 2, 2],
    qk_norm="rms_norm_across_heads", rope_max_seq_len=1024, text_dim=4096,
)  # fmt: skip
WAN_1_3B = dict(WAN_TRANSFORMER, num_attention_heads=12, ffn_dim=8960, num_layers=30)
WAN_14B = dict(WAN_TRANSFORMER, num_attention_heads=40, ffn_dim=13824, num_layers=40)
UMT5_XXL = dict(architectures=["UMT5EncoderModel"], model_type="umt5", d_model=4096, d_ff=10240, d_kv=64, num_heads=64,
                num_layers=24, vocab_size=256384, feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                relative_attention_max_distance=128, tie_word_embeddings=False)  # fmt: skip
T5_XXL = dict(architectures=["T5EncoderModel"], model_type="t5", d_model=4096, d_ff=10240, d_kv=64, num_heads=64,
              num_layers=24, vocab_size=32128, feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
              relative_attention_max_distance=128, tie_word_embeddings=False)  # fmt: skip
LTX_TRANSFORMER = dict(_class_name="LTXVideoTransformer3DModel", in_channels=128, out_channels=128, patch_size=1,
                       patch_size_t=1, caption_channels=4096, qk_norm="rms_norm_across_heads", norm_eps=1e-6,
                       activation_fn="gelu-approximate", attention_bias=True, attention_out_bias=True,
                       norm_elementwise_affine=False, cross_attention_dim=2048)  # fmt: skip
LTX_2B = dict(LTX_TRANSFORMER, num_layers=28, num_attention_heads=32, attention_head_dim=64, cross_attention_dim=2048)
LTX_13B = dict(LTX_TRANSFORMER, num_layers=48, num_attention_heads=32, attention_head_dim=128, cross_attention_dim=4096)
LTX_VAE = dict(_class_name="AutoencoderKLLTXVideo", in_channels=3, out_channels=3, latent_channels=128,
               block_out_channels=[128, 256, 512, 512], decoder_block_out_channels=[256, 512, 1024],
               layers_per_block=[4, 3, 3, 3, 4], decoder_layers_per_block=[5, 6, 7, 8],
               spatio_temporal_scaling=[True, True, True, False], decoder_spatio_temporal_scaling=[True, True, True],
               decoder_inject_noise=[False, True, True, True], upsample_residual=[True, True, True],
               upsample_factor=[2, 2, 2], timestep_conditioning=True, patch_size=4, patch_size_t=1,
               resnet_norm_eps=1e-6, scaling_factor=1.0, encoder_causal=True, decoder_causal=False)  # fmt: skip


def wan_vae() -> dict:
    from diffusers import AutoencoderKLWan

    return {"_class_name": "AutoencoderKLWan", **{k: v for k, v in AutoencoderKLWan().config.items()
                                                   if not k.startswith("_")}}  # fmt: skip


def repositories() -> dict[str, dict[str, dict]]:
    """repo id → {relative path: JSON} for every shipped checkpoint."""
    wan_index = {"_class_name": "WanPipeline", "scheduler": ["diffusers", "UniPCMultistepScheduler"],
                 "text_encoder": ["transformers", "UMT5EncoderModel"], "tokenizer": ["transformers", "T5TokenizerFast"],
                 "transformer": ["diffusers", "WanTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"]}
    ltx_index = {"_class_name": "LTXPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                 "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5TokenizerFast"],
                 "transformer": ["diffusers", "LTXVideoTransformer3DModel"],
                 "vae": ["diffusers", "AutoencoderKLLTXVideo"]}  # fmt: skip
    wan_text = {"text_encoder/config.json": UMT5_XXL, "tokenizer/tokenizer_config.json": {"model_max_length": 512},
                "vae/config.json": wan_vae()}  # fmt: skip
    ltx_text = {"text_encoder/config.json": T5_XXL, "tokenizer/tokenizer_config.json": {"model_max_length": 128},
                "vae/config.json": LTX_VAE}  # fmt: skip
    return {
        "Wan-AI/Wan2.1-T2V-1.3B-Diffusers": {"model_index.json": wan_index, "transformer/config.json": WAN_1_3B,
                                             **wan_text},
        "Wan-AI/Wan2.1-T2V-14B-Diffusers": {"model_index.json": wan_index, "transformer/config.json": WAN_14B,
                                            **wan_text},
        "Wan-AI/Wan2.2-T2V-A14B-Diffusers": {
            "model_index.json": {**wan_index, "transformer_2": ["diffusers", "WanTransformer3DModel"],
                                 "boundary_ratio": 0.875, "expand_timesteps": False},
            "transformer/config.json": WAN_14B, "transformer_2/config.json": WAN_14B, **wan_text},
        "Lightricks/LTX-Video-0.9.5": {"model_index.json": ltx_index, "transformer/config.json": LTX_2B, **ltx_text},
        "Lightricks/LTX-Video-0.9.7-dev": {"model_index.json": ltx_index, "transformer/config.json": LTX_13B,
                                           **ltx_text},
    }  # fmt: skip


def shipped(repo_id: str) -> Path | None:
    """The directory of fbgen's architecture configs for a hub id, if it ships them."""
    path = ROOT / repo_id.replace("/", "--")
    return path if (path / "model_index.json").is_file() else None


def main() -> None:
    for repo, files in repositories().items():
        for rel, data in files.items():
            path = ROOT / repo.replace("/", "--") / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"_fbgen_note": NOTE, **data}, indent=2) + "\n")
    print(f"wrote {ROOT}")


if __name__ == "__main__":
    main()
