#!/usr/bin/python3
"""Golden logits for the CPU reference forward, computed by an independent implementation:
the PyTorch Megrez2 module of models/megrez2-tiny/train/megrez2.py (fp32 throughout).

For every case of CASES this writes tests/data/reference/<case>/:
  config.json        Hugging Face config (every key of shared/docs/megrez2-model.md)
  model.safetensors  f32 weights under the checkpoint names (experts on pool owners only)
  expected.json      {"ids": [...], "vocab_size": V, "logits": "logits.f32",
                      "routing": {"<layer>": [[expert ids of position 0], ...]},
                      optional "own_layer_logits": "logits_own_layer.f32"}
  logits.f32         float32 little-endian [T, vocab], the pre-gated forward
  logits_own_layer.f32  (some cases) the same model routed from each layer's OWN h2

Weights are random but scaled so signals survive every layer (unit-variance activations,
router logits of std ~1.5, random router biases that matter), and a seed is accepted only
when every decision is robust: each routing choice and each group choice wins by at least
MIN_ROUTE_MARGIN (fp64 recomputation), and each position's argmax beats the runner-up by
MIN_ARGMAX_MARGIN. So an fp32-vs-fp64 rounding difference can never flip an expected id.

Run: /usr/bin/python3 tests/data/reference/make_golden.py   (needs python3-torch)
"""
import json
import math
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "megrez2-tiny", "train"))
import megrez2  # noqa: E402

MIN_ROUTE_MARGIN = 1e-4
MIN_ARGMAX_MARGIN = 1e-3

BASE = dict(vocab_size=48, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=32, moe_intermediate_size=8,
            n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=1,
            experts_shared_frequency=1, first_k_dense_replace=1, n_group=1, topk_group=1,
            norm_topk_prob=True, routed_scaling_factor=1.0, rms_norm_eps=1e-6,
            rope_theta=10000.0, tie_word_embeddings=False)

# name -> (overrides of BASE, sequence length, also store the own-layer-routing logits)
CASES = {
    # Every matrix input a multiple of 32, so converters can quantise it to q8_0/q4_0.
    "base": (dict(moe_intermediate_size=32, n_routed_experts=4, experts_shared_frequency=2), 16, True),
    "mqa_freq2": (dict(num_key_value_heads=1, experts_shared_frequency=2, num_hidden_layers=4), 16, False),
    "mha_freq3": (dict(num_key_value_heads=4, experts_shared_frequency=3, num_hidden_layers=5), 16, True),
    "groups4_keep2": (dict(n_group=4, topk_group=2), 16, False),
    "groups2_keep1_k3": (dict(n_group=2, topk_group=1, num_experts_per_tok=3), 16, False),
    "nonorm_scaled": (dict(norm_topk_prob=False, routed_scaling_factor=2.5), 16, False),
    "norm_scaled_shared2": (dict(routed_scaling_factor=2.5, n_shared_experts=2), 16, False),
    "dense2_freq2": (dict(first_k_dense_replace=2, experts_shared_frequency=2, num_hidden_layers=5), 16, True),
    "tied": (dict(tie_word_embeddings=True), 16, False),
    "odd48": (dict(hidden_size=48, num_attention_heads=6, num_key_value_heads=3, vocab_size=72,
                   intermediate_size=40, moe_intermediate_size=12, n_routed_experts=6,
                   experts_shared_frequency=2), 16, False),
    "theta1e6_long": (dict(rope_theta=1e6, rms_norm_eps=1e-5, num_attention_heads=2,
                           num_key_value_heads=1, num_hidden_layers=3), 40, False),
}


def hf_config(cfg):
    """config.json with the real checkpoint's keys (values of this case)."""
    d = dict(cfg)
    d.update(architectures=["MegrezMoeForCausalLM"], model_type="megrez_moe", moe_layer_freq=1,
             pre_gate=True, scoring_func="sigmoid", topk_method="noaux_tc", hidden_act="silu",
             attention_bias=False, rope_scaling=None, max_position_embeddings=256,
             torch_dtype="float32")
    return d


def randomize(model, gen):
    """Scale-aware random weights: unit-variance activations through every layer."""
    targets = model._hf_targets()
    with torch.no_grad():
        for name, t in targets.items():
            if name.endswith("e_score_correction_bias"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.15)
            elif t.dim() == 1:  # norms: around 1, not all equal
                t.copy_(0.6 + 0.8 * torch.rand(t.shape, generator=gen))
            elif name == "model.embed_tokens.weight":
                t.copy_(torch.randn(t.shape, generator=gen))
            elif name.endswith("mlp.gate.weight"):  # router logits of std ~1.5
                t.copy_(torch.randn(t.shape, generator=gen) * 1.5 / math.sqrt(t.shape[1]))
            else:  # Linear [out, in]
                t.copy_(torch.randn(t.shape, generator=gen) * 1.2 / math.sqrt(t.shape[1]))
    if model.lm_head is not None:
        model.lm_head.weight.data.mul_(2.0)


def routing_margin(cfg, pg, router):
    """Smallest fp64 gap that decides any expert or group choice for these router inputs."""
    s = torch.sigmoid(pg.double() @ router.weight.double().t())
    b = s + router.e_score_correction_bias.double()
    n, e = b.shape
    k, margin = cfg.num_experts_per_tok, math.inf
    if cfg.n_group > 1:
        grouped = b.view(n, cfg.n_group, e // cfg.n_group)
        gscore = torch.sort(grouped, dim=-1, descending=True).values[..., :2].sum(-1)
        gs = torch.sort(gscore, dim=-1, descending=True).values
        margin = min(margin, (gs[:, cfg.topk_group - 1] - gs[:, cfg.topk_group]).min().item())
        keep = torch.sort(gscore, dim=-1, descending=True, stable=True).indices[:, :cfg.topk_group]
        gmask = torch.zeros_like(gscore, dtype=torch.bool).scatter_(1, keep, True)
        b = grouped.masked_fill(~gmask[..., None], -math.inf).view(n, e)
    bs = torch.sort(b, dim=-1, descending=True).values
    if k < bs.shape[1]:
        gap = bs[:, k - 1] - bs[:, k]
        margin = min(margin, gap[torch.isfinite(gap)].min().item() if torch.isfinite(gap).any() else math.inf)
    return margin


def run_checked(model, ids):
    """Logits and routing, plus the smallest routing margin met on the way."""
    cfg, inputs = model.cfg, {}
    hooks = [layer.mlp.gate.register_forward_hook(
        lambda mod, inp, out, i=i: inputs.__setitem__(i, inp[0].detach().clone()))
        for i, layer in enumerate(model.layers) if cfg.is_moe(i)]
    try:
        logits, routing = model(ids, return_routing=True)
    finally:
        for h in hooks:
            h.remove()
    margin = min(routing_margin(cfg, inputs[i], model.layers[i].mlp.gate) for i in inputs)
    top2 = torch.topk(logits, 2, dim=-1).values
    return logits, routing, margin, (top2[:, 0] - top2[:, 1]).min().item()


def write_safetensors(path, tensors):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        data = tensors[name].contiguous().float().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def write_f32(path, t):
    with open(path, "wb") as f:
        f.write(t.contiguous().float().numpy().astype("<f4").tobytes())


def make_case(name, overrides, length, with_own_layer):
    cfg_dict = dict(BASE, **overrides)
    for seed in range(1000):
        gen = torch.Generator().manual_seed(1000 * (1 + list(CASES).index(name)) + seed)
        model = megrez2.Megrez2ForCausalLM(megrez2.Megrez2Config.from_dict(cfg_dict))
        randomize(model, gen)
        ids = torch.randint(0, cfg_dict["vocab_size"], (length,), generator=gen)
        logits, routing, margin, argmax_gap = run_checked(model, ids)
        own = None
        if with_own_layer:
            model.route_from_own_layer = True
            own, _, own_margin, own_gap = run_checked(model, ids)
            model.route_from_own_layer = False
            margin, argmax_gap = min(margin, own_margin), min(argmax_gap, own_gap)
        if margin >= MIN_ROUTE_MARGIN and argmax_gap >= MIN_ARGMAX_MARGIN:
            break
    else:
        raise SystemExit(f"{name}: no seed gave robust decisions")

    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(hf_config(cfg_dict), f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(out, "model.safetensors"), model.hf_state_dict())
    write_f32(os.path.join(out, "logits.f32"), logits)
    expected = {"ids": ids.tolist(), "vocab_size": cfg_dict["vocab_size"], "logits": "logits.f32",
                "routing": {str(i): r.tolist() for i, r in routing.items()},
                "min_routing_margin": margin, "min_argmax_margin": argmax_gap,
                "max_abs_logit": logits.abs().max().item()}
    if own is not None:
        write_f32(os.path.join(out, "logits_own_layer.f32"), own)
        expected["own_layer_logits"] = "logits_own_layer.f32"
        expected["own_layer_max_abs_diff"] = (own - logits).abs().max().item()
    with open(os.path.join(out, "expected.json"), "w") as f:  # one key per line, values compact
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in expected.items()) + "\n}\n")
    print(f"{name}: seed {seed}, routing margin {margin:.2e}, argmax margin {argmax_gap:.2e}, "
          f"max |logit| {expected['max_abs_logit']:.2f}")


def main():
    torch.set_num_threads(1)
    for name, (overrides, length, own) in CASES.items():
        make_case(name, overrides, length, own)


if __name__ == "__main__":
    main()
