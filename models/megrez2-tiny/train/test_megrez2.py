#!/usr/bin/python3
"""Self-test of megrez2.py: the batched forward must equal a naive token-by-token decoder
(KV cache, explicit per-head / per-expert loops, router in plain Python) written here from the
spec, over random configs covering n_group, norm_topk_prob, routed_scaling_factor,
experts_shared_frequency, first_k_dense_replace, tied embeddings and kv-head counts.
Also checks exact tie-breaking toward lower expert ids and the safetensors round trip.
Run: /usr/bin/python3 models/megrez2-tiny/train/test_megrez2.py
"""
import math
import os
import random
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
from megrez2 import Megrez2Config, Megrez2ForCausalLM  # noqa: E402


def naive_route(cfg, W, bias, pg):
    """Plain-Python noaux_tc router for one token."""
    s = [1.0 / (1.0 + math.exp(-v)) for v in (W @ pg).tolist()]
    b = [s[e] + float(bias[e]) for e in range(len(s))]
    E = len(s)
    if cfg.n_group > 1:
        gs = E // cfg.n_group
        gscore = [sum(sorted(b[g * gs:(g + 1) * gs], reverse=True)[:2]) for g in range(cfg.n_group)]
        keep = sorted(range(cfg.n_group), key=lambda g: (-gscore[g], g))[:cfg.topk_group]
        b = [b[e] if e // gs in keep else -math.inf for e in range(E)]
    idx = sorted(range(E), key=lambda e: (-b[e], e))[:cfg.num_experts_per_tok]
    w = [s[e] for e in idx]
    if cfg.norm_topk_prob:
        w = [x / sum(w) for x in w]
    return idx, [x * cfg.routed_scaling_factor for x in w]


def naive_forward(model, ids):
    cfg = model.cfg
    sd = model.hf_state_dict()
    H, Hkv, Dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    eps = cfg.rms_norm_eps

    def norm(x, w):
        return w * x / torch.sqrt((x * x).mean() + eps)

    def rope(v, pos):
        out = v.clone()
        half = Dh // 2
        for j in range(half):
            ang = pos / (cfg.rope_theta ** (2 * j / Dh))
            c, s = math.cos(ang), math.sin(ang)
            out[j] = v[j] * c - v[j + half] * s
            out[j + half] = v[j + half] * c + v[j] * s
        return out

    def mlp(prefix, h):
        g, u, d = (sd[prefix + n + ".weight"] for n in ("gate_proj", "up_proj", "down_proj"))
        return d @ (torch.nn.functional.silu(g @ h) * (u @ h))

    kcache = [[] for _ in range(cfg.num_hidden_layers)]
    vcache = [[] for _ in range(cfg.num_hidden_layers)]
    all_logits, all_routes = [], []
    for pos, tok in enumerate(ids):
        x = sd["model.embed_tokens.weight"][tok].clone()
        pg = None
        routes = {}
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            h = norm(x, sd[p + "input_layernorm.weight"])
            q = (sd[p + "self_attn.q_proj.weight"] @ h).view(H, Dh)
            k = (sd[p + "self_attn.k_proj.weight"] @ h).view(Hkv, Dh)
            v = (sd[p + "self_attn.v_proj.weight"] @ h).view(Hkv, Dh)
            kcache[i].append(torch.stack([rope(k[j], pos) for j in range(Hkv)]))
            vcache[i].append(v)
            heads = []
            for j in range(H):
                kv = j // (H // Hkv)
                qj = rope(q[j], pos)
                sc = torch.tensor([float(qj @ kk[kv]) / math.sqrt(Dh) for kk in kcache[i]])
                pr = torch.softmax(sc, 0)
                heads.append(sum(pr[t] * vcache[i][t][kv] for t in range(len(pr))))
            x = x + sd[p + "self_attn.o_proj.weight"] @ torch.cat(heads)
            h2 = norm(x, sd[p + "post_attention_layernorm.weight"])
            if i < cfg.first_k_dense_replace:
                y = mlp(p + "mlp.", h2)
            else:
                idx, w = naive_route(cfg, sd[p + "mlp.gate.weight"],
                                     sd[p + "mlp.gate.e_score_correction_bias"], pg)
                routes[i] = idx
                owner = cfg.first_k_dense_replace + \
                    ((i - cfg.first_k_dense_replace) // cfg.experts_shared_frequency) * cfg.experts_shared_frequency
                y = mlp(p + "mlp.shared_experts.", h2)
                for e, we in zip(idx, w):
                    y = y + we * mlp(f"model.layers.{owner}.mlp.experts.{e}.", h2)
            x = x + y
            pg = h2
        head = sd.get("lm_head.weight", sd["model.embed_tokens.weight"])
        all_logits.append(head @ norm(x, sd["model.norm.weight"]))
        all_routes.append(routes)
    return torch.stack(all_logits), all_routes


def random_config(rng):
    heads = rng.choice([2, 4])
    n_group = rng.choice([1, 2, 4])
    experts = n_group * rng.choice([2, 3, 4])
    topk_group = rng.randint(1, n_group)
    return Megrez2Config(
        vocab_size=rng.choice([50, 64]), hidden_size=heads * 8, num_hidden_layers=rng.randint(3, 6),
        num_attention_heads=heads, num_key_value_heads=rng.choice([h for h in (1, 2, 4) if heads % h == 0]),
        intermediate_size=24, moe_intermediate_size=rng.choice([8, 16]), n_routed_experts=experts,
        num_experts_per_tok=rng.randint(1, topk_group * experts // n_group), n_shared_experts=rng.randint(1, 2),
        experts_shared_frequency=rng.randint(1, 3), first_k_dense_replace=rng.randint(1, 2),
        n_group=n_group, topk_group=topk_group, norm_topk_prob=rng.random() < 0.5,
        routed_scaling_factor=rng.choice([1.0, 2.5]), rms_norm_eps=rng.choice([1e-6, 1e-5]),
        rope_theta=rng.choice([10000.0, 1e6]), tie_word_embeddings=rng.random() < 0.3)


def test_random_configs():
    rng = random.Random(7)
    for trial in range(12):
        cfg = random_config(rng)
        torch.manual_seed(trial)
        model = Megrez2ForCausalLM(cfg)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.3)
            for layer in model.layers:
                if hasattr(layer.mlp, "gate"):
                    layer.mlp.gate.e_score_correction_bias.normal_(0, 0.1)
        ids = [rng.randrange(cfg.vocab_size) for _ in range(7)]
        logits, routing = model(ids, return_routing=True)
        ref, ref_routes = naive_forward(model, ids)
        err = (logits - ref).abs().max().item()
        assert err < 1e-4 * max(1.0, ref.abs().max().item()), (trial, cfg, err)
        for t in range(len(ids)):
            for l, idx in ref_routes[t].items():
                assert routing[l][t].tolist() == idx, (trial, l, t)
    print("random configs: batched forward == naive decoder")


def test_ties_go_to_lower_ids():
    cfg = Megrez2Config(vocab_size=16, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        num_key_value_heads=1, intermediate_size=8, moe_intermediate_size=8,
                        n_routed_experts=8, num_experts_per_tok=3, n_shared_experts=1,
                        n_group=4, topk_group=2)
    model = Megrez2ForCausalLM(cfg)
    with torch.no_grad():
        model.layers[1].mlp.gate.weight.zero_()   # every score 0.5: all experts and groups tie
    _, routing = model([1, 2, 3], return_routing=True)
    assert routing[1].tolist() == [[0, 1, 2]] * 3, routing[1].tolist()
    print("ties: lowest expert / group ids win")


def test_safetensors_round_trip():
    cfg = random_config(random.Random(3))
    model = Megrez2ForCausalLM(cfg)
    sd = model.hf_state_dict()
    dtypes = {n: "F32" if n.endswith("bias") else "BF16" for n in sd}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        safetensors_io.write(path, sd, dtypes)
        back, back_dtypes = safetensors_io.read(path)
    assert back_dtypes == dtypes and set(back) == set(sd)
    for n, t in sd.items():
        want = t if dtypes[n] == "F32" else t.to(torch.bfloat16).float()
        assert torch.equal(back[n], want), n
    n_experts = sum(1 for n in sd if ".experts." in n)
    assert n_experts == 3 * cfg.n_routed_experts * cfg.num_pools
    print("safetensors: bf16/f32 round trip exact, experts only on pool owners")


if __name__ == "__main__":
    torch.set_num_threads(1)
    test_ties_go_to_lower_ids()
    test_safetensors_round_trip()
    test_random_configs()
    print("all tests passed")
