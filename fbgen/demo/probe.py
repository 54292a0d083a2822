"""Which caption words a demo transformer listens to.

Its flow-matching loss on held-out clips with the true caption, against the same caption with one attribute's word
swapped for another value ("moving left" → "moving right"). A word the model uses costs loss when it is wrong; a
word it ignores costs nothing. This tells a failure of conditioning (the model never learned what "left" means)
apart from a failure of sampling, without sampling anything.

    python -m fbgen.demo.probe [--model small]
"""

from __future__ import annotations

import argparse
import dataclasses
from functools import partial
from pathlib import Path

import torch

from fbgen.demo.data import COLOURS, DIRECTIONS, RELATIONS, SHAPES, SPEEDS, TEXTURES, Clip, dataset

SWAPS = {  # attribute → {its value in a caption: the value put in its place}
    "colour": dict(zip(COLOURS, [*list(COLOURS)[1:], list(COLOURS)[0]])),
    "shape": dict(zip(SHAPES, [*SHAPES[1:], SHAPES[0]])),
    "texture": dict(zip(TEXTURES, reversed(TEXTURES))),
    "direction": {"left": "right", "right": "left", "up": "down", "down": "up"},
    "speed": dict(zip(SPEEDS, reversed(list(SPEEDS)))),
    "relation": {"above": "below", "below": "above", "left of": "right of", "right of": "left of"},
}
assert set(SWAPS["direction"]) == set(DIRECTIONS) and set(SWAPS["relation"]) == set(RELATIONS)
SIGMAS = (0.9, 0.75, 0.6, 0.4)
PROBE_SEED = 2029  # held-out clips of their own, apart from fbgen.demo.results' evaluation captions


def swapped(clip: Clip, attribute: str) -> str:
    """The clip's caption with the first object's `attribute` (or the relation: both objects' place words) changed."""
    if attribute == "relation":
        return dataclasses.replace(clip, relation=SWAPS["relation"][clip.relation]).caption
    value = getattr(clip.things[0], attribute)
    return clip.caption.replace(f" {value} ", f" {SWAPS[attribute][value]} ", 1)


def latents(vae, clips: list[Clip]) -> torch.Tensor:
    """The clips' latents as the transformers see them: encoded, then normalised by the autoencoder's config."""
    from fbgen.demo.train import encode_clips

    mean, std = (torch.tensor(vae.config[k]).view(1, -1, 1, 1, 1) for k in ("latents_mean", "latents_std"))
    return (encode_clips(vae, clips, torch.device("cpu")) - mean) / std


@torch.no_grad()
def flow_loss(net, pipe, x0: torch.Tensor, noise: torch.Tensor, sigma: float, captions: list[str]) -> float:
    """The flow-matching loss of transformer `net` on normalised latents `x0` noised to `sigma` with `noise`, under
    `captions` encoded by `pipe`'s tokenizer and text encoder, as training computes it."""
    from fbgen.demo.train import features, tokens

    cond = features(pipe.text_encoder, *tokens(pipe.tokenizer, captions))
    xt, t = (1 - sigma) * x0 + sigma * noise, torch.full((len(x0),), sigma * 1000)
    velocity = net(hidden_states=xt, timestep=t, encoder_hidden_states=cond, return_dict=False)[0]
    return (velocity - (noise - x0)).square().mean().item()


@torch.no_grad()
def sensitivity(pair: str | Path | None = None, model: str = "large", clips: int = 32,
                sigmas: tuple[float, ...] = SIGMAS) -> dict[str, dict[float, float]]:  # fmt: skip
    """Per attribute and noise level, the loss with that word swapped over the loss with the true caption, minus 1
    (0.5 = 50% more loss). One-object clips for the objects' attributes, two-object clips for the relation."""
    from diffusers import WanPipeline, WanTransformer3DModel

    import fbgen.demo.autoencoder  # noqa: F401  (the autoencoder's class, for from_pretrained)
    from fbgen.families.demo import PAIR

    root = Path(pair or PAIR)
    pipe = WanPipeline.from_pretrained(root / "large", use_safetensors=True)
    net = WanTransformer3DModel.from_pretrained(root / model, subfolder="transformer", use_safetensors=True).eval()
    pool = dataset(PROBE_SEED, 8 * clips, held=True)
    generator = torch.Generator().manual_seed(PROBE_SEED)

    loss = partial(flow_loss, net, pipe)
    out: dict[str, dict[float, float]] = {}
    for count in (1, 2):  # each clip set is encoded, noised and scored with its true captions once
        chosen = [c for c in pool if len(c.things) == count][:clips]
        x0 = latents(pipe.vae, chosen)
        noise = torch.randn(x0.shape, generator=generator)
        true = {sigma: loss(x0, noise, sigma, [c.caption for c in chosen]) for sigma in sigmas}
        for attribute in [a for a in SWAPS if (a == "relation") == (count == 2)]:
            out[attribute] = {sigma: loss(x0, noise, sigma, [swapped(c, attribute) for c in chosen]) / true[sigma] - 1
                              for sigma in sigmas}  # fmt: skip
    return out


def table(result: dict[str, dict[float, float]]) -> str:
    sigmas = list(next(iter(result.values())))
    head = "| swapped word | " + " | ".join(f"σ {s:g}" for s in sigmas) + " |"
    rows = [f"| {a} | " + " | ".join(f"{100 * v:+.1f}%" for v in by.values()) + " |" for a, by in result.items()]
    return "\n".join([head, "| --- |" + " ---: |" * len(sigmas), *rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", help="a pair directory with large/ and small/ (default: the shipped pair)")
    parser.add_argument("--model", default="large", choices=["large", "small"])
    parser.add_argument("--clips", type=int, default=32)
    args = parser.parse_args(argv)
    print(table(sensitivity(args.pair, args.model, args.clips)))


if __name__ == "__main__":
    main()
