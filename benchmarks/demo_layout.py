"""Can a fresh demo-sized model learn to put a named object where its caption says? (issue 17: relations at chance)

`benchmarks/demo_relations.py` found the shipped large model deaf to the relation through a loss probe, which can
only see a model that listens in the narrow band of noise where blobs show but their colours do not. This study
asks by sampling instead, in the smallest worlds that still ask it: single frames (no motion), one or two objects.
A fresh text encoder and large transformer (the demo pair's sizes) learn each as `fbgen train-demo` trains them
(recipe's lr, batch, caption dropout and EMA), then diffusers' `WanPipeline` samples held-out captions (UniPC, 20
steps, CFG 4) and the checker reads where each colour landed.

- `relation`: the world's relations ("a red circle above a blue square ..."), objects named in either order;
- `halves`: the first-named object always in the top half, the other in the bottom half, each tagged by its own
  word ("a red circle up a blue square down ..."), as the world tags each object's direction;
- `single`: one object, in the top or bottom half as its word says ("a red circle up ...");
- `stacked` and `tagged`, to tell which part of a relation is hard: one object in each half as in `halves`, named in
  either order; which colour is on top is said by the relation word ("above"/"below") in `stacked`, by each
  object's own word ("up"/"down") in `tagged`.

`placed`: the share of videos, among those that show every named colour, where the first-named object is where
the caption puts it (the relation holds; it is in its half). 50% is chance in every arm. `layout` (halves, tagged):
the two objects in opposite halves whichever is which, a fact of the training set no caption word is needed for.
`--buckets N` gives the text encoder N relative-position buckets (the pair's 8 put every distance 2-7 in one);
`--coordinates A` adds two latent channels holding each latent pixel's x and y (from -A to A, the same in every
clip; the transformers then have 18 channels, the autoencoder never sees them): the absolute position a Wan token
otherwise lacks (RoPE only weights attention by offsets).
Training runs on CUDA when present (`--device`).

    python benchmarks/demo_layout.py --arm single --arm halves --arm relation --json \
        benchmarks/results/cpu-demo-layout.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from fbgen.demo import checker, train
from fbgen.demo.data import SIZE, Clip, held_out, render, sample_clip
from fbgen.demo.train import LARGE_SIZES, Recipe, hardware, to_tensor, tokenizer, tokens, train_transformer

ARMS = ("relation", "halves", "single", "stacked", "tagged")
TAGGED = ("halves", "single", "tagged")  # arms whose objects each carry their own up/down word
TOP, BOTTOM = SIZE // 2 - 4, SIZE // 2 + 4  # a half's objects have their centre this far clear of the middle
TRAIN_SEED, TEST_SEED = 1, 7
STEPS = 1500


def caption(arm: str, clip: Clip) -> str:
    words = [f"a {t.colour} {t.shape}" for t in clip.things]
    if arm not in TAGGED:
        body = f" {clip.relation} ".join(words)
    else:
        body = " ".join(f"{w} {'up' if t.centre(0)[1] < SIZE / 2 else 'down'}" for w, t in zip(words, clip.things))
    return f"{body} on a {clip.background} background"


def draw(arm: str, rng: random.Random) -> Clip:
    """A world clip of the arm's kind (only its first frame is shown): one object in a half for single, else two
    (one in each half for halves, stacked and tagged; halves: the first in the top one)."""
    while True:
        clip = sample_clip(rng)
        ys = [t.centre(0)[1] for t in clip.things]
        if arm == "relation" and len(ys) == 2:
            return clip
        if arm in ("stacked", "tagged") and clip.relation in ("above", "below") and min(ys) < TOP and max(ys) > BOTTOM:
            return clip
        if arm == "halves" and clip.relation in ("above", "below"):
            clip = clip if clip.relation == "above" else Clip(clip.things[::-1], "above", clip.background)
            if clip.things[0].centre(0)[1] < TOP and clip.things[1].centre(0)[1] > BOTTOM:
                return clip
        if arm == "single" and len(ys) == 1 and not TOP <= ys[0] <= BOTTOM:
            return clip


def clips(arm: str, seed: int, count: int, held: bool) -> list[Clip]:
    rng = random.Random(seed)
    out: list[Clip] = []
    while len(out) < count:
        clip = draw(arm, rng)
        if held_out(caption(arm, clip)) == held:
            out.append(clip)
    return out


@torch.no_grad()
def frames_latents(vae, chosen: list[Clip]) -> torch.Tensor:
    """First frames through the shipped autoencoder (an image is one latent frame), normalised by its config; only
    its learned channels (the study adds coordinates of its own with `--coordinates`)."""
    mean, std = (normaliser(vae, k) for k in ("latents_mean", "latents_std"))
    x = torch.stack([to_tensor(render(c)[:1]) for c in chosen])
    z = torch.cat([vae.encode(x[i : i + 256]).latent_dist.mode() for i in range(0, len(x), 256)])
    return (z[:, : vae.learned_channels] - mean) / std


def normaliser(vae, key: str) -> torch.Tensor:
    """The autoencoder's per-channel latent mean or std of its learned channels, shaped to broadcast."""
    return torch.tensor(vae.config[key][: vae.learned_channels]).view(1, -1, 1, 1, 1)


def with_coordinates(z: torch.Tensor, amplitude: float) -> torch.Tensor:
    """`z` with two more channels that hold each latent pixel's x and y (a fixed ramp from -amplitude to amplitude,
    the same in every clip): absolute position for tokens that otherwise have none."""
    from fbgen.demo.autoencoder import coordinate_ramps

    return torch.cat([z, coordinate_ramps(z, amplitude)], dim=1)


def placed(arm: str, clip: Clip, video: np.ndarray) -> dict[str, float] | None:
    """Where the checker finds each named colour against where the caption puts it; None when a colour is missing."""
    reading = checker.read(video)
    if any(t.colour not in reading.objects for t in clip.things):
        return None
    y = {t.colour: colour_row(video[0], t.colour) for t in clip.things}
    first = clip.things[0]
    if arm == "single":
        return {"placed": float((y[first.colour] < SIZE / 2) == (first.centre(0)[1] < SIZE / 2))}
    second = clip.things[1]
    if arm not in TAGGED:
        return {"placed": float((first.colour, clip.relation, second.colour) in reading.relations)}
    first_up = first.centre(0)[1] < second.centre(0)[1]
    return {"placed": float((y[first.colour] < y[second.colour]) == first_up),
            "layout": float(min(y.values()) < SIZE / 2 < max(y.values()))}  # fmt: skip


@torch.no_grad()
def decode(vae, z: torch.Tensor) -> np.ndarray:
    """Normalised latents → uint8 frames (B, F, H, W, 3), as `WanPipeline` decodes them."""
    mean, std = (normaliser(vae, k) for k in ("latents_mean", "latents_std"))
    video = vae.decode(z[:, : vae.learned_channels] * std + mean).sample
    return ((video + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 4, 1).numpy()


def colour_row(frame: np.ndarray, colour: str) -> float:
    """Mean row of the pixels the checker would label with this colour (or its stripes' pale tone)."""
    from fbgen.demo.data import COLOURS, pale

    tones = np.array([COLOURS[colour], pale(colour)], float)
    near = np.linalg.norm(frame.astype(float)[..., None, :] - tones, axis=-1).min(-1) < checker.TONE
    return float(np.argwhere(near)[:, 0].mean())


def run(arm: str, steps: int, device: str, buckets: int | None, coordinates: float | None, count: int,
        log=print) -> dict:  # fmt: skip
    from diffusers import WanPipeline

    import fbgen.demo.autoencoder  # noqa: F401  (the autoencoder's class, for from_pretrained)
    from fbgen.core.solvers import make_scheduler
    from fbgen.engine.engine import resolve_device
    from fbgen.families.demo import PAIR

    dev = resolve_device(device)
    shipped = WanPipeline.from_pretrained(PAIR / "large", use_safetensors=True)
    training = clips(arm, TRAIN_SEED, 6000, held=False)
    lat = frames_latents(shipped.vae, training)
    if coordinates:
        lat = with_coordinates(lat, coordinates)
    vocabulary = sorted({caption(arm, c) for c in training})
    index = {c: i for i, c in enumerate(vocabulary)}
    tok = tokenizer()
    recipe = Recipe()
    changes = {"relative_attention_num_buckets": buckets} if buckets else {}
    enc = train.text_encoder(recipe.seed, **changes)
    started = time.perf_counter()
    channels = {"in_channels": lat.shape[1], "out_channels": lat.shape[1]}
    model, text = train.transformer(LARGE_SIZES | channels, recipe.seed + 4), tokens(tok, [*vocabulary, ""])
    models, stats = train_transformer(model, enc, text, lat, torch.tensor([index[caption(arm, c)] for c in training]),
                                      steps, recipe.large_lr, recipe, dev, arm, log, train_text=True)  # fmt: skip
    train_s = time.perf_counter() - started
    pipe = WanPipeline(tokenizer=tok, text_encoder=models["text_encoder"], vae=shipped.vae,
                       transformer=models["transformer"], scheduler=make_scheduler("unipc", train.SHIFT))  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    test = clips(arm, TEST_SEED, count, held=True)
    scores = []
    for i in range(0, len(test), 25):
        batch = test[i : i + 25]
        z = pipe([caption(arm, c) for c in batch], height=SIZE, width=SIZE, num_frames=1, num_inference_steps=20,
                 guidance_scale=4.0, max_sequence_length=train.TEXT_TOKENS, output_type="latent",
                 generator=torch.Generator().manual_seed(i)).frames  # fmt: skip
        videos = decode(shipped.vae, z)
        scores += [placed(arm, c, v) for c, v in zip(batch, videos)]
    shown = [s for s in scores if s is not None]
    out = {
        "coordinates": coordinates,
        "steps": steps,
        "train_s": round(train_s, 1),
        "final_loss": stats["final_loss"],
        "hardware": hardware(dev),
        "buckets": enc.config.relative_attention_num_buckets,
        "captions": len(test),
        "shown": len(shown),
    }
    out |= {k: float(np.mean([s[k] for s in shown])) for k in (shown[0] if shown else {})}
    log(json.dumps(out))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", action="append", choices=ARMS, help="repeatable (default: every arm)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--buckets", type=int, help="text encoder's relative-position buckets (default: the pair's)")
    parser.add_argument("--coordinates", type=float, help="add x/y channels of this amplitude to the latent")
    parser.add_argument("--captions", type=int, default=100, help="held-out captions sampled per arm")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="add the results to this file, keyed by arm (buckets, steps)")
    args = parser.parse_args(argv)
    results = {}
    for arm in args.arm or ARMS:
        key = " ".join([arm, *([f"buckets {args.buckets}"] if args.buckets else []),
                        *([f"coordinates {args.coordinates:g}"] if args.coordinates else []),
                        *([f"{args.steps} steps"] if args.steps != STEPS else [])])  # fmt: skip
        results[key] = run(arm, args.steps, args.device, args.buckets, args.coordinates, args.captions)
        if args.json:
            old = json.loads(args.json.read_text()) if args.json.is_file() else {}
            args.json.write_text(json.dumps(old | {key: results[key]}, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
