"""Megrez2 (MegrezMoeForCausalLM) forward pass in PyTorch, written from
shared/docs/megrez2-model.md. Used to train the bundled tiny model and, by other helpers, to
compute golden logits for arbitrary configs the spec allows.

Everything is computed in fp32. Public entry points:
  cfg   = Megrez2Config.from_dict(config_json_dict)
  model = Megrez2ForCausalLM(cfg)                 # random init
  model.load_hf_state_dict({hf_name: tensor})     # checkpoint names of the spec
  logits = model(ids)                             # ids [T] -> logits [T, vocab] fp32
  logits, routing = model(ids, return_routing=True)  # routing[layer] = expert ids [T, k]
  model.hf_state_dict()                           # {hf_name: fp32 tensor}, experts on owners
Setting model.route_from_own_layer = True routes every MoE layer from ITS OWN h2 instead of
the previous layer's (the classic pre-gating bug); used only to measure that pre-gating matters.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Megrez2Config:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    moe_intermediate_size: int
    n_routed_experts: int
    num_experts_per_tok: int
    n_shared_experts: int
    experts_shared_frequency: int = 1
    first_k_dense_replace: int = 1
    n_group: int = 1
    topk_group: int = 1
    norm_topk_prob: bool = True
    routed_scaling_factor: float = 1.0
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False

    @staticmethod
    def from_dict(d):
        names = Megrez2Config.__dataclass_fields__.keys()
        kwargs = {k: d[k] for k in names if k in d and d[k] is not None}
        if "num_key_value_heads" not in kwargs:
            kwargs["num_key_value_heads"] = d["num_attention_heads"]
        return Megrez2Config(**kwargs)

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def is_moe(self, layer):
        return layer >= self.first_k_dense_replace

    def pool(self, layer):
        return (layer - self.first_k_dense_replace) // self.experts_shared_frequency

    def pool_owner(self, pool):
        return self.first_k_dense_replace + pool * self.experts_shared_frequency

    @property
    def num_pools(self):
        n_moe = self.num_hidden_layers - self.first_k_dense_replace
        return (n_moe + self.experts_shared_frequency - 1) // self.experts_shared_frequency


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        x = x.float()
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_cos_sin(positions, head_dim, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        H, Hkv, Dh, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.hidden_size
        self.q_proj = nn.Linear(D, H * Dh, bias=False)
        self.k_proj = nn.Linear(D, Hkv * Dh, bias=False)
        self.v_proj = nn.Linear(D, Hkv * Dh, bias=False)
        self.o_proj = nn.Linear(H * Dh, D, bias=False)

    def forward(self, h, cos, sin, mask):
        cfg = self.cfg
        B, T, _ = h.shape
        H, Hkv, Dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q = self.q_proj(h).view(B, T, H, Dh).transpose(1, 2)
        k = self.k_proj(h).view(B, T, Hkv, Dh).transpose(1, 2)
        v = self.v_proj(h).view(B, T, Hkv, Dh).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # GQA: q head j reads kv head j // (H / Hkv).
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(Dh) + mask
        a = torch.softmax(scores, dim=-1) @ v
        return self.o_proj(a.transpose(1, 2).reshape(B, T, H * Dh))


class SwiGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.gate_proj = nn.Linear(dim, inner, bias=False)
        self.up_proj = nn.Linear(dim, inner, bias=False)
        self.down_proj = nn.Linear(inner, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class ExpertPool(nn.Module):
    """Routed experts shared by experts_shared_frequency consecutive MoE layers (stacked)."""

    def __init__(self, cfg):
        super().__init__()
        E, I, D = cfg.n_routed_experts, cfg.moe_intermediate_size, cfg.hidden_size
        self.gate_proj = nn.Parameter(torch.empty(E, I, D))
        self.up_proj = nn.Parameter(torch.empty(E, I, D))
        self.down_proj = nn.Parameter(torch.empty(E, D, I))

    def forward(self, h2, idx, weights):
        """h2 [N, D]; idx, weights [N, k] -> sum_k weights * Expert[idx](h2)."""
        N, k = idx.shape
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.gate_proj.shape[0]).tolist()
        token_of = order // k
        w_sorted = weights.reshape(-1)[order]
        out = torch.zeros_like(h2)
        start = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            toks = token_of[start:start + n]
            z = h2[toks]
            y = F.silu(z @ self.gate_proj[e].t()) * (z @ self.up_proj[e].t())
            y = (y @ self.down_proj[e].t()) * w_sorted[start:start + n, None]
            out.index_add_(0, toks, y)
            start += n
        return out


def stable_topk_indices(x, k):
    """Indices of the k largest entries along the last dim; ties go to the LOWER index."""
    return torch.sort(x, dim=-1, descending=True, stable=True).indices[..., :k]


class Router(nn.Module):
    """noaux_tc router with sigmoid scores. weight [E, D] is named like the checkpoint's
    mlp.gate.weight; e_score_correction_bias is a buffer (trained by the bias update rule)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.empty(cfg.n_routed_experts, cfg.hidden_size))
        self.register_buffer("e_score_correction_bias", torch.zeros(cfg.n_routed_experts))

    def forward(self, pg):
        cfg = self.cfg
        s = torch.sigmoid(pg.float() @ self.weight.float().t())          # [N, E]
        b = (s + self.e_score_correction_bias).detach()                 # choice only
        if cfg.n_group > 1:
            N, E = b.shape
            grouped = b.view(N, cfg.n_group, E // cfg.n_group)
            top2 = min(2, E // cfg.n_group)
            gscore = torch.sort(grouped, dim=-1, descending=True).values[..., :top2].sum(-1)
            keep = stable_topk_indices(gscore, cfg.topk_group)          # [N, topk_group]
            gmask = torch.zeros_like(gscore, dtype=torch.bool).scatter_(1, keep, True)
            b = grouped.masked_fill(~gmask[..., None], float("-inf")).view(N, E)
        idx = stable_topk_indices(b, cfg.num_experts_per_tok)          # [N, k]
        w = s.gather(1, idx)
        if cfg.norm_topk_prob:
            w = w / w.sum(-1, keepdim=True)
        return idx, w * cfg.routed_scaling_factor


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate = Router(cfg)
        self.shared_experts = SwiGLU(cfg.hidden_size, cfg.n_shared_experts * cfg.moe_intermediate_size)

    def forward(self, h2, pg, pool):
        B, T, D = h2.shape
        flat = h2.reshape(B * T, D)
        idx, w = self.gate(pg.reshape(B * T, D))
        y = pool(flat, idx, w) + self.shared_experts(flat)
        return y.view(B, T, D), idx


class DecoderLayer(nn.Module):
    def __init__(self, cfg, layer):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.mlp = MoE(cfg) if cfg.is_moe(layer) else SwiGLU(cfg.hidden_size, cfg.intermediate_size)


class Megrez2ForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if isinstance(cfg, dict):
            cfg = Megrez2Config.from_dict(cfg)
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.pools = nn.ModuleList(ExpertPool(cfg) for _ in range(cfg.num_pools))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.route_from_own_layer = False
        self.init_weights()

    def init_weights(self, std=0.02):
        out_std = std / math.sqrt(2 * self.cfg.num_hidden_layers)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight", "down_proj")):
                nn.init.normal_(p, std=out_std)
            else:
                nn.init.normal_(p, std=std)

    def forward_batch(self, ids, return_routing=False):
        """ids [B, T] -> logits [B, T, vocab]; optionally routing[layer] = idx [B*T, k]."""
        cfg = self.cfg
        B, T = ids.shape
        x = self.embed_tokens(ids).float()
        cos, sin = rope_cos_sin(torch.arange(T), cfg.head_dim, cfg.rope_theta)
        mask = torch.full((T, T), float("-inf")).triu(1)
        pg = None
        routing = {}
        for i, layer in enumerate(self.layers):
            x = x + layer.self_attn(layer.input_layernorm(x), cos, sin, mask)
            h2 = layer.post_attention_layernorm(x)
            if not cfg.is_moe(i):
                y = layer.mlp(h2)
            else:
                router_input = h2 if self.route_from_own_layer else pg
                y, idx = layer.mlp(h2, router_input, self.pools[cfg.pool(i)])
                routing[i] = idx
            x = x + y
            pg = h2
        h = self.norm(x)
        logits = h @ (self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight).t()
        return (logits, routing) if return_routing else logits

    def forward(self, ids, return_routing=False):
        """ids [T] (one sequence, no BOS) -> fp32 logits [T, vocab]."""
        ids = torch.as_tensor(ids, dtype=torch.long).view(1, -1)
        with torch.no_grad():
            logits, routing = self.forward_batch(ids, return_routing=True)
        if return_routing:
            return logits[0], {i: r.view(-1, r.shape[-1]) for i, r in routing.items()}
        return logits[0]

    # ---- checkpoint names (the spec's "Checkpoint" section) ----
    def hf_state_dict(self):
        return {k: v.detach().float().clone() for k, v in self._hf_targets().items()}

    def load_hf_state_dict(self, tensors):
        """Copy checkpoint-named tensors in; every expected name must be present."""
        cfg = self.cfg
        with torch.no_grad():
            targets = {}
            for name, dst in self._hf_targets().items():
                if name not in tensors:
                    raise KeyError(f"missing tensor {name}")
                src = torch.as_tensor(tensors[name]).float()
                if tuple(src.shape) != tuple(dst.shape):
                    raise ValueError(f"{name}: shape {tuple(src.shape)} != {tuple(dst.shape)}")
                dst.copy_(src)
                targets[name] = True
            extra = set(tensors) - set(targets)
            if extra:
                raise KeyError(f"unexpected tensors: {sorted(extra)[:5]}")
        return cfg

    def _hf_targets(self):
        """Like hf_state_dict but returning the live storage (views) to copy into."""
        cfg = self.cfg
        t = {"model.embed_tokens.weight": self.embed_tokens.weight.data,
             "model.norm.weight": self.norm.weight.data}
        if self.lm_head is not None:
            t["lm_head.weight"] = self.lm_head.weight.data
        for i, layer in enumerate(self.layers):
            p = f"model.layers.{i}."
            t[p + "input_layernorm.weight"] = layer.input_layernorm.weight.data
            t[p + "post_attention_layernorm.weight"] = layer.post_attention_layernorm.weight.data
            for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
                t[p + f"self_attn.{n}.weight"] = getattr(layer.self_attn, n).weight.data
            if not cfg.is_moe(i):
                for n in ("gate_proj", "up_proj", "down_proj"):
                    t[p + f"mlp.{n}.weight"] = getattr(layer.mlp, n).weight.data
                continue
            t[p + "mlp.gate.weight"] = layer.mlp.gate.weight.data
            t[p + "mlp.gate.e_score_correction_bias"] = layer.mlp.gate.e_score_correction_bias
            for n in ("gate_proj", "up_proj", "down_proj"):
                t[p + f"mlp.shared_experts.{n}.weight"] = getattr(layer.mlp.shared_experts, n).weight.data
            if cfg.pool_owner(cfg.pool(i)) == i:
                pool = self.pools[cfg.pool(i)]
                for e in range(cfg.n_routed_experts):
                    for n in ("gate_proj", "up_proj", "down_proj"):
                        t[p + f"mlp.experts.{e}.{n}.weight"] = getattr(pool, n).data[e]
        return t
