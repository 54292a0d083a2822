"""Why the demo pair renders relations at chance: fine-tune its large model on clips where the relation is the only
thing that tells the two objects apart, and ask whether it starts to listen to the relation.

`fbgen.demo.probe` measures how much a model's loss rises when one caption word is wrong. The shipped large model
uses every object word (colour, shape, texture, direction, speed) and not the relation (+0.0%). In the world's
two-object clips the objects almost always differ in motion, shape or texture, so a model can bind each colour to
its object without the relation. Each arm here removes that excuse a little more, continues training the shipped
large model (transformer and text encoder, as `fbgen train-demo` trains them) and probes again:

- `two-object`: the world's two-object clips only (every batch carries a relation);
- `move-alike`: half the world's clips, half two-object clips whose objects move alike (direction and speed);
- `canonical`: as move-alike, but the upper (left) object is always named first, so the relation is only "above" or
  "left of" and the text encoder need not combine a word's role with the relation's word;
- `twins`: canonical, half the world's clips and half twins: one colour, one motion, one texture, two shapes. Only
  the relation says which blob is which shape;
- `alike`: every clip has two objects alike in all but colour and place (one shape, texture and motion), the
  smallest world with a relation in it; with `--scratch` a fresh large transformer and text encoder learn it alone.

The probe: loss with the two objects named in the other order (the relation is then wrong, every binding of
attributes to an object kept) over loss with the true caption, minus 1, on held-out clips of the world and of the
arm's kind, before and after. The weights are the trained ones, not an EMA, so a little learning shows. Training
runs on CUDA when present (`--device`), the probes on the CPU.

    python benchmarks/demo_relations.py --arm twins --steps 1500 --json benchmarks/results/cpu-demo-relations.json
    python benchmarks/demo_relations.py --arm alike --scratch --steps 2000
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from fbgen.demo import data, train
from fbgen.demo.data import Clip, Thing, apart, dataset, held_out, start
from fbgen.demo.probe import PROBE_SEED, flow_loss, latents
from fbgen.demo.train import Recipe, hardware, tokens, train_transformer

ARMS = ("two-object", "move-alike", "canonical", "twins", "alike")
CANONICAL = {"below": "above", "right of": "left of"}  # the other object named first reads the same
SIGMAS = (0.97, 0.9, 0.75, 0.6)
LR = 4e-4  # half the recipe's peak: this continues a trained model
TRAIN_SEED = 77  # the arm's training clips
ARM_PROBE_SEED = 99  # the arm's held-out probe clips (the world's are fbgen.demo.probe's)


def canonical(clip: Clip) -> Clip:
    if clip.relation in CANONICAL:
        return Clip(clip.things[::-1], CANONICAL[clip.relation], clip.background)
    return clip


def special(rng: random.Random, arm: str, held: bool) -> Clip:
    """A two-object clip of the arm's kind: its objects move alike (twins: also one colour and texture, two
    shapes; alike: also one shape and texture), in the held-out split or the training split."""
    while True:
        colours = rng.sample(list(data.COLOURS), 2)
        relation, background = rng.choice(list(data.RELATIONS)), rng.choice(list(data.BACKGROUNDS))
        direction, speed = rng.choice(list(data.DIRECTIONS)), rng.choice(list(data.SPEEDS))
        a = Thing(colours[0], rng.choice(data.SHAPES), rng.choice(data.TEXTURES), direction, speed,
                  start(rng, direction, speed))  # fmt: skip
        if arm == "twins":
            b = Thing(a.colour, rng.choice([s for s in data.SHAPES if s != a.shape]), a.texture, direction, speed,
                      start(rng, direction, speed))  # fmt: skip
        elif arm == "alike":
            b = Thing(colours[1], a.shape, a.texture, direction, speed, start(rng, direction, speed))
        else:
            b = Thing(colours[1], rng.choice(data.SHAPES), rng.choice(data.TEXTURES), direction, speed,
                      start(rng, direction, speed))  # fmt: skip
        clip = Clip((a, b), relation, background)
        if arm in ("canonical", "twins"):
            clip = canonical(clip)
        if apart(*clip.things, clip.relation) and held_out(clip.caption) == held:
            return clip


def training_clips(arm: str, count: int, seed: int) -> list[Clip]:
    if arm == "two-object":
        return [c for c in dataset(seed, 2 * count) if len(c.things) == 2][:count]
    rng = random.Random(seed + 1)
    if arm == "alike":
        return [special(rng, arm, held=False) for _ in range(count)]
    world = dataset(seed, count // 2)
    if arm in ("canonical", "twins"):
        world = [canonical(c) for c in world]
    return world + [special(rng, arm, held=False) for _ in range(count - len(world))]


@torch.no_grad()
def order_sensitivity(pipe, clips: list[Clip]) -> dict[float, float]:
    """Per sigma, the loss with the two objects named in the other order over the loss with the true caption, - 1."""
    net, x0 = pipe.transformer.eval(), latents(pipe.vae, clips)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))

    pipe.text_encoder.eval()
    true, other = [c.caption for c in clips], [Clip(c.things[::-1], c.relation, c.background).caption for c in clips]
    return {s: flow_loss(net, pipe, x0, noise, s, other) / flow_loss(net, pipe, x0, noise, s, true) - 1
            for s in SIGMAS}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from diffusers import WanPipeline

    import fbgen.demo.autoencoder  # noqa: F401  (the autoencoder's class, for from_pretrained)
    from fbgen.engine.engine import resolve_device
    from fbgen.families.demo import PAIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", choices=ARMS, default="twins")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--clips", type=int, default=8000)
    parser.add_argument("--probe-clips", type=int, default=32)
    parser.add_argument("--scratch", action="store_true", help="train a fresh large model instead of the shipped one")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="auto", help="where to train (auto: CUDA when present); probes: CPU")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    began = time.perf_counter()

    pipe = WanPipeline.from_pretrained(Path(PAIR) / "large", use_safetensors=True)
    rng = random.Random(ARM_PROBE_SEED)
    world = [c for c in dataset(PROBE_SEED, 8 * args.probe_clips, held=True) if len(c.things) == 2][: args.probe_clips]
    probes = {"world": [canonical(c) for c in world] if args.arm in ("canonical", "twins") else world}
    if args.arm != "two-object":
        probes[args.arm] = [special(rng, args.arm, held=True) for _ in range(args.probe_clips)]
    if args.scratch:  # as `fbgen train-demo` starts its large phase (its learning rate below)
        pipe.transformer, pipe.text_encoder = train.transformer(train.LARGE_SIZES, TRAIN_SEED), train.text_encoder(
            TRAIN_SEED)  # fmt: skip
    before = {name: order_sensitivity(pipe, probe) for name, probe in probes.items()}

    clips = training_clips(args.arm, args.clips, seed=TRAIN_SEED)
    vocabulary = sorted({c.caption for c in clips})
    index = {caption: i for i, caption in enumerate(vocabulary)}
    text = tokens(pipe.tokenizer, [*vocabulary, ""])
    captions = torch.tensor([index[c.caption] for c in clips])
    lr = Recipe().large_lr if args.scratch else LR
    models, stats = train_transformer(pipe.transformer.requires_grad_(True), pipe.text_encoder, text,
                                      latents(pipe.vae, clips), captions, args.steps, lr, Recipe(ema=0.0), device,
                                      args.arm, lambda line: print(line, flush=True), train_text=True)  # fmt: skip
    pipe.transformer, pipe.text_encoder = models["transformer"], models["text_encoder"]
    after = {name: order_sensitivity(pipe, probe) for name, probe in probes.items()}

    print(f"| clips | when | {' | '.join(f'σ {s:g}' for s in SIGMAS)} |\n| --- | --- |{' ---: |' * len(SIGMAS)}")
    for name in probes:
        for when, result in (("before", before), (f"after {args.steps} steps", after)):
            print(f"| {name} | {when} | {' | '.join(f'{100 * v:+.1f}%' for v in result[name].values())} |")
    record = {"arm": args.arm, "scratch": args.scratch, "steps": args.steps, "clips": len(clips), "lr": lr,
              "sigmas": list(SIGMAS),
              "before": before, "after": after, "final_loss": stats["final_loss"], "hardware": hardware(device),
              "wall_s": time.perf_counter() - began}  # fmt: skip
    if args.json:
        runs = json.loads(args.json.read_text()) if args.json.is_file() else {}
        runs[args.arm + (" scratch" if args.scratch else "")] = record
        args.json.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
