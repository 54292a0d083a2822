import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from fbgen.apps.tiny import LARGE, SMALL, tiny_transformer
from fbgen.core.flops import forwards_per_step, plan_flops
from fbgen.core.schedule import build_plan
from fbgen.families.wan import forward_flops as wan_forward_flops

WAN_1_3B = dict(patch_size=[1, 2, 2], num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30,
                in_channels=16, out_channels=16, text_dim=4096, freq_dim=256)  # fmt: skip
WAN_14B = {**WAN_1_3B, "num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40}


@pytest.mark.parametrize("sizes", [LARGE, SMALL], ids=["large", "small"])
@pytest.mark.parametrize("latent", [(2, 4, 6), (3, 8, 8)])
def test_formula_matches_torch_flop_counter(sizes, latent):
    torch.manual_seed(0)
    model = tiny_transformer(**sizes)
    text_tokens = 512
    x = torch.randn(1, 16, *latent)
    text = torch.randn(1, text_tokens, model.config.text_dim)
    counter = FlopCounterMode(display=False)
    # the math SDPA backend decomposes attention into matmuls, which the counter sees on CPU
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(hidden_states=x, timestep=torch.tensor([500]), encoder_hidden_states=text, return_dict=False)
    assert wan_forward_flops(model.config, latent, text_tokens) == counter.get_total_flops()


def test_full_size_wan_matches_published_per_forward_figures():
    latent = (21, 60, 104)  # 480x832x81
    assert wan_forward_flops(WAN_1_3B, latent, 512) / 1e12 == pytest.approx(283, rel=0.01)
    assert wan_forward_flops(WAN_14B, latent, 512) / 1e12 == pytest.approx(1678, rel=0.01)


def test_plan_flops_lsl_is_0_6_large_plus_0_4_small_with_cfg():
    plan = build_plan("LSL", [0.4, 0.8], "fraction", list(range(50)), [1 - i / 50 for i in range(50)])
    per_forward = {"L": 1678, "S": 283}
    flops = plan_flops(plan, per_forward, {"L": 5.0, "S": 5.0})
    assert flops["large_only"] == 50 * 2 * 1678
    assert flops["total"] == 2 * (30 * 1678 + 20 * 283)
    assert flops["ratio"] == pytest.approx(0.6 + 0.4 * 283 / 1678)
    assert flops["per_model"] == {"L": 2 * 30 * 1678, "S": 2 * 20 * 283}
    assert forwards_per_step(1.0) == 1 and forwards_per_step(1.5) == 2
