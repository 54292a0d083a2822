"""Train the shipped demo pair: a Wan-architecture large/small text-to-video pair on the procedural clips.

Three phases, each seeded, on CUDA when present (else CPU):
1. a small causal video autoencoder with the Wan VAE's interface and layout (`fbgen.demo.autoencoder`: 4x spatial,
   2x temporal, 18 latent channels: 16 learned, 2 fixed x/y coordinate ramps) learns to reconstruct clips, object
   pixels and their surroundings weighted up; its latent mean/std per channel go into its config
   (`latents_mean`/`latents_std`, 0 and 1 for the ramps, which the transformers see as they are), where Wan's
   pipeline reads them;
2. the large `WanTransformer3DModel` learns flow matching on the latents (x_t = (1 - s) x0 + s noise, target
   noise - x0, s shifted like the sampler's sigmas, 10% empty captions for CFG, EMA) together with a tiny UMT5
   text encoder over a word-level tokenizer of the captions' vocabulary. Wan's UMT5 comes pretrained; a random
   frozen one is a poor stand-in (with it the large model used every caption word about half as much, as
   `fbgen.demo.probe` measures), so here it learns with the large model. Its features are computed as
   `WanPipeline.encode_prompt` computes them, so training and sampling condition alike;
3. the small transformer (~8x fewer parameters, as Wan 2.1 1.3B to 14B is 10.8x) learns the same objective on the
   now frozen text encoder: the pair shares it, and the autoencoder.

The result is two diffusers `WanPipeline` directories (safetensors) sharing text encoder and VAE, plus a model card.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fbgen.demo import data
from fbgen.demo.data import FRAMES, SIZE, WORDS, dataset, render, sample_split

TEXT_TOKENS = 24  # captions are at most 21 words + </s>; the demo family pads prompts to this length
SHIFT = 3.0  # flow shift of the training sigmas: most training steps at high noise, where layout is learned
SAMPLING_SHIFT = 1.0  # the pair's sampling shift (its scheduler config, configs/demo.yaml). Wan's 3.0 is for 480p:
# the shift grows with the token count (SD3's rule: with its square root), and a 48x48x9 clip has 1/180 of the
# tokens of Wan's 480x832x81, which puts it below 1: no shift. With 3.0, half of 20 steps lay above sigma 0.75, so
# SLL's small-model steps ended before composition is decided (SLL kept 96% of LLL's accuracy) and the divergence
# curve's low middle sat in the last steps (docs/BENCHMARKS.md, "Sampling shift and the calibration rule")
VAE = dict(z_dim=18, width=96, blocks=2, scale_factor_temporal=2, scale_factor_spatial=4, coordinates=4.0)
TEXT = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
            relative_attention_max_distance=16, dropout_rate=0.0)  # fmt: skip
TRANSFORMER = dict(patch_size=(1, 2, 2), in_channels=VAE["z_dim"], out_channels=VAE["z_dim"], text_dim=TEXT["d_model"],
                   freq_dim=64, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)  # fmt: skip
LARGE_SIZES = dict(num_layers=4, num_attention_heads=4, attention_head_dim=32, ffn_dim=512)
SMALL_SIZES = dict(num_layers=2, num_attention_heads=2, attention_head_dim=32, ffn_dim=128)
SPECIALS = ("<pad>", "</s>", "<unk>")


@dataclass
class Recipe:
    """Everything that decides the weights (with the seed); the model card records it."""

    seed: int = 0
    vae_steps: int = 1200
    vae_batch: int = 16
    vae_lr: float = 2e-3
    object_weight: float = 20.0
    halo: int = 2  # pixels around objects weighted like the objects
    clips: int = 20000  # transformer training set (latents encoded once)
    large_steps: int = 6000
    small_steps: int = 3000
    batch: int = 32
    large_lr: float = 8e-4  # also the text encoder's, trained with the large model
    small_lr: float = 1e-3
    caption_dropout: float = 0.1
    ema: float = 0.999


def tokenizer():
    """Word-level tokenizer over the captions' closed vocabulary, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate((*SPECIALS, *WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=TEXT_TOKENS)  # fmt: skip


def text_encoder(seed: int, **changes: Any):
    """A fresh UMT5 encoder of the pair's sizes (`changes` override them, for studies)."""
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    config = UMT5Config(vocab_size=len(SPECIALS) + len(WORDS), pad_token_id=0, eos_token_id=1, **(TEXT | changes))
    return UMT5EncoderModel(config).eval().requires_grad_(False)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (F, H, W, 3) → float (3, F, H, W) in [-1, 1], the VAE's input range."""
    return torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1.0


# -- phase 1: the autoencoder ---------------------------------------------------------------------------------------
def train_vae(recipe: Recipe, device: torch.device, log: Callable[[str], None]) -> tuple[dict[str, Any], dict]:
    from fbgen.demo.autoencoder import CausalFrameAutoencoder

    torch.manual_seed(recipe.seed)
    vae = CausalFrameAutoencoder(**VAE).to(device).train()
    opt = torch.optim.Adam(vae.parameters(), lr=recipe.vae_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / recipe.vae_steps)))
    rng = random.Random(recipe.seed + 1)
    start, losses = time.perf_counter(), []
    for step in range(recipe.vae_steps):
        x = torch.stack([to_tensor(render(sample_split(rng, False))) for _ in range(recipe.vae_batch)]).to(device)
        recon = vae.decode_unclamped(vae.encode(x).latent_dist.mode())
        error = (recon - x).abs() + (recon - x).square()
        weight = 1 + recipe.object_weight * near_objects(x, recipe.halo)
        loss = (error * weight).mean() / weight.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(error.mean().item())
        if step % 100 == 0 or step == recipe.vae_steps - 1:
            log(f"vae step {step}/{recipe.vae_steps} recon {np.mean(losses[-100:]):.4f}")
    vae.eval().requires_grad_(False)
    return {"vae": vae}, {"steps": recipe.vae_steps, "final_recon_loss": float(np.mean(losses[-100:])),
                 "wall_s": time.perf_counter() - start}  # fmt: skip


def near_objects(x: torch.Tensor, halo: int) -> torch.Tensor:
    """1 on object pixels and within `halo` pixels of them, else 0: (B, 1, F, H, W). Objects cover a few percent of
    a frame, so their pixels are weighted up (or the autoencoder settles on background only), and so are the
    pixels around them (or it draws objects too big: a halo on cheap background pixels costs it nothing)."""
    b, _, f, h, w = x.shape
    objects = (x - x[..., :1, :1]).abs().amax(dim=1).gt(0.1).float().reshape(b * f, 1, h, w)
    grown = torch.nn.functional.max_pool2d(objects, 2 * halo + 1, stride=1, padding=halo)
    return grown.reshape(b, 1, f, h, w)


@torch.no_grad()
def encode_clips(vae, clips: list, device: torch.device, chunk: int = 64) -> torch.Tensor:
    """Posterior means of the clips, un-normalised (B, z_dim, 5, 12, 12)."""
    out = []
    for i in range(0, len(clips), chunk):
        x = torch.stack([to_tensor(render(c)) for c in clips[i : i + chunk]]).to(device)
        out.append(vae.encode(x).latent_dist.mode().cpu())
    return torch.cat(out)


# -- phases 2-3: captions, then the transformers -----------------------------------------------------------------------
def transformer(sizes: dict, seed: int):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(**(TRANSFORMER | sizes))  # sizes win, for studies


def shifted(u: torch.Tensor, shift: float = SHIFT) -> torch.Tensor:
    """The same sigma shift the flow schedulers apply at sampling time."""
    return shift * u / (1 + (shift - 1) * u)


def tokens(tok, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention masks, padded as `WanPipeline.encode_prompt` pads them."""
    out = tok(captions, padding="max_length", max_length=TEXT_TOKENS, truncation=True, add_special_tokens=True,
              return_attention_mask=True, return_tensors="pt")  # fmt: skip
    return out.input_ids, out.attention_mask


def features(enc, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What `WanPipeline.encode_prompt` makes of tokenized captions: the encoder's last hidden states, zero past each
    caption's end."""
    return enc(ids, mask).last_hidden_state * mask[..., None].to(enc.dtype)


def train_transformer(model, enc, text: tuple[torch.Tensor, torch.Tensor], latents: torch.Tensor,
                      captions: torch.Tensor, steps: int, lr: float, recipe: Recipe, device: torch.device, name: str,
                      log: Callable[[str], None], train_text: bool) -> tuple[dict[str, Any], dict]:  # fmt: skip
    """Flow matching with caption dropout and an EMA copy (the EMA weights are the ones shipped). `text` holds the
    token ids and masks of every distinct caption, the empty caption last; `captions` indexes it per clip. With
    `train_text` the text encoder learns along (and its EMA is returned too); else it stays as it is."""
    ids, mask = (t.to(device) for t in text)
    enc = enc.to(device)
    trained = torch.nn.ModuleDict({"transformer": model.to(device).train()})
    if train_text:
        trained["text_encoder"] = enc.train().requires_grad_(True)
    else:
        with torch.no_grad():
            bank = features(enc.eval(), ids, mask)
    ema = copy.deepcopy(trained).eval().requires_grad_(False)
    opt = torch.optim.AdamW(trained.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    gen = torch.Generator().manual_seed(recipe.seed + 2)
    latents, captions = latents.to(device), captions.to(device)
    empty = len(ids) - 1
    start, losses = time.perf_counter(), []
    for step in range(steps):
        idx = torch.randint(0, len(latents), (recipe.batch,), generator=gen).to(device)
        x0 = latents[idx]
        drop = (torch.rand(recipe.batch, generator=gen) < recipe.caption_dropout).to(device)
        rows = torch.where(drop, empty, captions[idx])
        cond = features(enc, ids[rows], mask[rows]) if train_text else bank[rows]
        sigma = shifted(torch.rand(recipe.batch, generator=gen)).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        s = sigma.view(-1, 1, 1, 1, 1)
        xt = (1 - s) * x0 + s * noise
        pred = model(hidden_states=xt, timestep=sigma * 1000, encoder_hidden_states=cond, return_dict=False)[0]
        loss = (pred.float() - (noise - x0)).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = min(recipe.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), trained.parameters()):
                e.lerp_(p, 1 - decay)
        losses.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            log(f"{name} step {step}/{steps} loss {np.mean(losses[-100:]):.4f}")
    return dict(ema.cpu().items()), {"steps": steps, "final_loss": float(np.mean(losses[-100:])),
                                     "wall_s": time.perf_counter() - start}  # fmt: skip


# -- the whole recipe -----------------------------------------------------------------------------------------------
def train_pair(out: str | Path, recipe: Recipe | None = None, device: str = "auto",
               log: Callable[[str], None] = print, command: str | None = None) -> dict[str, Path]:  # fmt: skip
    """Train VAE, then the large and the small transformer; write `out/large`, `out/small` and `out/MODEL_CARD.md`."""
    from diffusers import WanPipeline, WanTransformer3DModel
    from transformers import UMT5EncoderModel

    from fbgen.core.solvers import make_scheduler
    from fbgen.demo.autoencoder import CausalFrameAutoencoder
    from fbgen.engine.engine import resolve_device

    recipe = recipe or Recipe()
    dev = resolve_device(device)
    out = Path(out)
    started = time.perf_counter()
    log(f"training the demo pair on {dev} ({torch.get_num_threads()} CPU threads)")

    def autoencoder() -> tuple[dict[str, Any], dict]:
        return train_vae(recipe, dev, log)

    vae_models, vae_stats = resumable(out / ".vae", {"vae": CausalFrameAutoencoder}, autoencoder,
                                      phase_key(recipe, "vae"), log)  # fmt: skip
    vae = vae_models["vae"]

    clips = dataset(recipe.seed + 3, recipe.clips)
    raw = encode_clips(vae.to(dev), clips, dev)
    mean, std = raw.mean(dim=(0, 2, 3, 4)), raw.std(dim=(0, 2, 3, 4))
    fixed = vae.config.z_dim - vae.learned_channels
    if fixed:  # the coordinate ramps reach the transformers as they are: the same absolute scale for every clip
        mean[-fixed:], std[-fixed:] = 0.0, 1.0
    vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
    latents = (raw - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1)

    tok = tokenizer()
    vocabulary = sorted({c.caption for c in clips})
    index = {caption: i for i, caption in enumerate(vocabulary)}
    text = tokens(tok, [*vocabulary, ""])  # the empty caption (CFG's unconditional branch) last
    captions = torch.tensor([index[c.caption] for c in clips])

    def large() -> tuple[dict[str, Any], dict]:
        model, enc = transformer(LARGE_SIZES, recipe.seed + 4), text_encoder(recipe.seed)
        return train_transformer(model, enc, text, latents, captions, recipe.large_steps, recipe.large_lr, recipe,
                                 dev, "large", log, train_text=True)  # fmt: skip

    classes = {"transformer": WanTransformer3DModel, "text_encoder": UMT5EncoderModel}
    large_models, large_stats = resumable(out / ".large", classes, large, phase_key(recipe, "large"), log)
    enc = large_models["text_encoder"]

    def small() -> tuple[dict[str, Any], dict]:
        model = transformer(SMALL_SIZES, recipe.seed + 5)
        return train_transformer(model, enc, text, latents, captions, recipe.small_steps, recipe.small_lr, recipe,
                                 dev, "small", log, train_text=False)  # fmt: skip

    small_models, small_stats = resumable(out / ".small", {"transformer": WanTransformer3DModel}, small,
                                          phase_key(recipe, "small"), log)  # fmt: skip
    stats = {"vae": vae_stats, "large": large_stats, "small": small_stats}
    shared = dict(tokenizer=tok, text_encoder=enc.cpu(), vae=vae.cpu())
    paths = {}
    for name, models in (("large", large_models), ("small", small_models)):
        model = models["transformer"]
        stats[name]["parameters"] = sum(p.numel() for p in model.parameters())
        paths[name] = out / name
        tmp = out / f".{name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        if name == "large":  # a whole pipeline; the small one ships its transformer only and shares the rest
            scheduler = make_scheduler("unipc", SAMPLING_SHIFT)
            WanPipeline(transformer=model, scheduler=scheduler, **shared).save_pretrained(tmp, safe_serialization=True)
        else:
            model.save_pretrained(tmp / "transformer", safe_serialization=True)
        shutil.rmtree(paths[name], ignore_errors=True)
        tmp.rename(paths[name])
    stats["vae"]["parameters"] = sum(p.numel() for p in vae.parameters())
    stats["vae"]["learned_channels"] = vae.learned_channels
    stats["text_encoder_parameters"] = sum(p.numel() for p in enc.parameters())
    stats["wall_s"] = time.perf_counter() - started
    write_card(out, recipe, stats, dev, len(vocabulary), command)
    for checkpoint in (".vae", ".large", ".small"):
        shutil.rmtree(out / checkpoint, ignore_errors=True)
    log(f"done in {stats['wall_s']:.0f} s: {', '.join(map(str, paths.values()))}")
    return paths


WORLD = hashlib.sha1(Path(data.__file__).read_bytes()).hexdigest()  # the clips every phase learns from
PHASES = {  # what decides each phase's result: its own settings and those of the phases it builds on
    "vae": (("seed", "vae_steps", "vae_batch", "vae_lr", "object_weight", "halo"), {"vae": VAE, "world": WORLD}),
    "large": (("clips", "large_steps", "batch", "large_lr", "caption_dropout", "ema"),
              {"text_encoder": TEXT, "transformer": TRANSFORMER, "large": LARGE_SIZES, "text_tokens": TEXT_TOKENS,
               "shift": SHIFT}),
    "small": (("small_steps", "small_lr"), {"small": SMALL_SIZES}),
}  # fmt: skip


def phase_key(recipe: Recipe, phase: str) -> dict:
    """The settings a phase's result depends on; a finished phase with the same key is reused, not retrained."""
    key: dict = {}
    for name, (fields, architecture) in PHASES.items():
        key |= {f: getattr(recipe, f) for f in fields} | architecture
        if name == phase:
            return json.loads(json.dumps(key))  # as it reads back from phase.json
    raise KeyError(phase)


def resumable(path: Path, classes: dict[str, Any], train: Callable[[], tuple[dict[str, Any], dict]], key: dict,
              log: Callable[[str], None]) -> tuple[dict[str, Any], dict]:  # fmt: skip
    """Run one training phase, or reuse its models from an interrupted run with the same settings (`path`)."""
    marker = path / "phase.json"
    record = json.loads(marker.read_text()) if marker.exists() else {}
    if record.get("key") == key:
        log(f"reusing {path.name.lstrip('.')} from an earlier run with the same settings")
        return {name: cls.from_pretrained(path / name, use_safetensors=True).eval().requires_grad_(False)
                for name, cls in classes.items()}, record["stats"] | {"reused": True}  # fmt: skip
    models, stats = train()
    shutil.rmtree(path, ignore_errors=True)
    for name, model in models.items():
        model.save_pretrained(path / name, safe_serialization=True)
    marker.write_text(json.dumps({"key": key, "stats": stats}))
    return models, stats


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def write_card(out: Path, recipe: Recipe, stats: dict, device: torch.device, captions: int, command: str | None
               ) -> None:  # fmt: skip
    """MODEL_CARD.md (for people) and training.json (for tools) beside the two pipeline directories."""
    record = {"recipe": asdict(recipe), "stats": stats, "hardware": hardware(device), "command": command,
              "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
              "architecture": {"vae": VAE, "text_encoder": TEXT, "transformer": TRANSFORMER, "large": LARGE_SIZES,
                               "small": SMALL_SIZES, "text_tokens": TEXT_TOKENS, "shift": SHIFT,
                               "sampling_shift": SAMPLING_SHIFT}}  # fmt: skip
    (out / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    large, small, vae = stats["large"], stats["small"], stats["vae"]
    phases = "; ".join(f"{name} {stats[key]['wall_s']:.0f} s" + (" in an earlier run with the same settings, reused "
                       "here" if stats[key].get("reused") else "") for name, key in (("VAE", "vae"), ("large",
                       "large"), ("small", "small")))  # fmt: skip
    channels = f"{VAE['z_dim']} channels"
    if vae["learned_channels"] < VAE["z_dim"]:
        amplitude = f"{VAE['coordinates']:g}"
        channels += f": {vae['learned_channels']} learned and x/y coordinate ramps from -{amplitude} to {amplitude}"
    rows = "\n".join([
        *(f"| {name} transformer (`{name}/transformer`) | {s['parameters']:,} | {s['steps']} steps, batch "
          f"{recipe.batch}, lr {lr}, final loss {s['final_loss']:.4f}, {s['wall_s']:.0f} s |"
          for name, s, lr in (("large", large, recipe.large_lr), ("small", small, recipe.small_lr))),
        f"| VAE (`large/vae`, causal frame autoencoder, {VAE['scale_factor_spatial']}x spatial, "
        f"{VAE['scale_factor_temporal']}x temporal, {channels}) | {vae['parameters']:,} | {vae['steps']} steps, "
        f"batch {recipe.vae_batch}, L1+L2 recon "
        f"{vae['final_recon_loss']:.4f} (object pixels and {recipe.halo} around them weighted "
        f"{recipe.object_weight:g}x in training), "
        f"{vae['wall_s']:.0f} s |",
        f"| text encoder (`large/text_encoder`, UMT5, word-level tokenizer over {len(WORDS)} words) | "
        f"{stats['text_encoder_parameters']:,} | trained with the large transformer (its EMA), then frozen for the "
        f"small one |",
    ])  # fmt: skip
    card = f"""# fbgen demo pair

Two text-to-video models of the Wan 2.1 architecture (diffusers `WanTransformer3DModel`), trained from scratch on
fbgen's procedural clips (`fbgen/demo/data.py`): one or two objects (circle/square/triangle, plain or with 2-pixel
pale stripes, 4 colours), each moving left/right/up/down slowly or quickly, placed above/below/left of/right of each
other (said by a place word beside each name), over a black or gray background; {SIZE}x{SIZE} pixels, {FRAMES}
frames, captioned from their attributes ("a red striped circle uppermost moving left slowly and a blue plain square
lowermost moving up quickly on a gray background"). About one caption in eight is held out of training
(`fbgen.demo.data.held_out`) for evaluation. The two models share one autoencoder and one text encoder, so fbgen can
switch between them inside one trajectory. Made for demos and for testing FlowBlending on real learned models; they
know nothing else.

| component | parameters | training |
| --- | ---: | --- |
{rows}

- Parameter ratio large/small: {large["parameters"] / small["parameters"]:.1f}x.
- Data: {recipe.clips} clips of the training split for the transformers ({captions} distinct captions), fresh
  clips every VAE step.
- Objective: rectified flow (x_t = (1-s) x0 + s noise, target noise - x0), s shifted by {SHIFT:g};
  {recipe.caption_dropout:.0%} empty captions for classifier-free guidance; the shipped weights are the EMA
  ({recipe.ema}).
- Hardware: {hardware(device)}; torch {torch.__version__}; wall time of this run {stats["wall_s"]:.0f} s (phases:
  {phases}).
- Reproduce: `{command or "fbgen train-demo"}` (seed {recipe.seed}; the same recipe on other hardware gives
  equivalent, not bit-identical, weights).
- Load with diffusers: `import fbgen.demo.autoencoder` (the autoencoder's class), then
  `WanPipeline.from_pretrained("large")`; the small transformer: `WanTransformer3DModel.from_pretrained("small",
  subfolder="transformer")`.
- Sampling: `family: demo` in a fbgen config, or `fbgen run --demo` ({SIZE}x{SIZE}, {FRAMES} frames, UniPC, shift
  {SAMPLING_SHIFT:g}, prompts padded to {TEXT_TOKENS} tokens); videos are written upscaled 4x for viewing.
"""
    (out / "MODEL_CARD.md").write_text(card)
