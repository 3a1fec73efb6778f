#!/usr/bin/python3
"""Export the trained tiny Megrez2 and compute golden data FROM THE EXPORTED FILE.

1. Load the last phase's checkpoint (--ckpt, default train/ckpt/last.pt), write
   ../model.safetensors (checkpoint names of the spec; every
   tensor BF16 except mlp.gate.e_score_correction_bias, F32; routed experts only under the
   pool owner layers).
2. Read model.safetensors back (bf16 -> fp32 exactly) into a fresh fp32 model, so the golden
   logits are a pure function of the shipped files.
3. Write ../golden/golden.json and one raw float32 little-endian [len(ids), vocab] logits file
   per prompt, greedy continuations, layer routing of prompt 0, and held-out perplexity with
   correct pre-gated routing vs routing from each layer's own h2.
"""
import argparse
import json
import math
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
from megrez2 import Megrez2ForCausalLM  # noqa: E402

# Golden prompts, one slot each: a KJV opening, a KJV verse opening, a byte-fallback string
# (CJK, emoji + variation selector, euro, accents, typographic quotes), a long Genesis 1
# passage, and a chat-formatted prompt with the role tokens. Near-tie guard: a runtime's
# fp32 rounding must not flip an expert choice or a greedy argmax, so each slot takes its
# FIRST candidate whose routing margins and greedy logit gap clear the thresholds below
# (the first candidates are the prompts shipped so far; the others keep the slot's kind).
PROMPT_SLOTS = [
    ["In the beginning God created",
     "In the beginning was the Word,",
     "The LORD is my shepherd;"],
    ["And Jesus said unto them,",
     "And Jesus answered and said unto them,",
     "Then said Jesus unto them,"],
    ["Peace 平安 🕊️ be with you. €5 — “naïve café”",
     "Grace 恩典 🙏 to you. £3 — “déjà vu”",
     "Love 爱 ❤️ never fails. ¥7 — “São Paulo”"],
    ["And God said, Let there be light: and there was light. And God saw the light, that it was "
     "good: and God divided the light from the darkness. And God called the light Day, and the "
     "darkness he called Night. And the evening and the morning were the first day.",
     "In the beginning was the Word, and the Word was with God, and the Word was God. The same "
     "was in the beginning with God. All things were made by him; and without him was not any "
     "thing made that was made. In him was life; and the life was the light of men.",
     "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he "
     "leadeth me beside the still waters. He restoreth my soul: he leadeth me in the paths of "
     "righteousness for his name's sake."],
    ["<|role_start|>user<|role_end|>Who created the heaven and the earth?<|turn_end|>"
     "<|role_start|>assistant<|role_end|>",
     "<|role_start|>user<|role_end|>Who was the first king of Israel?<|turn_end|>"
     "<|role_start|>assistant<|role_end|>",
     "<|role_start|>user<|role_end|>What is love?<|turn_end|>"
     "<|role_start|>assistant<|role_end|>"],
]
MIN_PROMPT_ROUTING_MARGIN = 3e-4   # over the prompt's own positions (full-logit comparison)
MIN_GREEDY_ROUTING_MARGIN = 3e-5   # over prompt + greedy tokens (only the argmax must agree)
MIN_GREEDY_LOGIT_GAP = 1e-3        # top-1 minus top-2 logit at every greedy step
GREEDY_TOKENS = 32
PPL_WINDOW = 256


def export_safetensors(model, path):
    tensors = model.hf_state_dict()
    dtypes = {n: "F32" if n.endswith("e_score_correction_bias") else "BF16" for n in tensors}
    safetensors_io.write(path, tensors, dtypes)
    return len(tensors)


def load_exported(cfg, path):
    tensors, _ = safetensors_io.read(path)
    model = Megrez2ForCausalLM(cfg)
    model.load_hf_state_dict(tensors)
    model.eval()
    return model


def routing_margin(model, ids):
    """Smallest gap, over all MoE layers and positions, between the last chosen and the first
    rejected biased score (and between the last kept and first dropped group score): how
    close this prompt comes to a tie that fp32 rounding differences could flip."""
    cfg = model.cfg
    margins = []

    def hook(router, inputs, _output):
        b = torch.sigmoid(inputs[0].float() @ router.weight.t()) + router.e_score_correction_bias
        if cfg.n_group > 1:
            grouped = b.view(b.shape[0], cfg.n_group, -1)
            gscore = torch.sort(grouped, dim=-1, descending=True).values[..., :2].sum(-1)
            gs = torch.sort(gscore, dim=-1, descending=True).values
            margins.append((gs[:, cfg.topk_group - 1] - gs[:, cfg.topk_group]).min().item())
            keep = torch.sort(gscore, dim=-1, descending=True, stable=True).indices[:, :cfg.topk_group]
            mask = torch.zeros_like(gscore, dtype=torch.bool).scatter_(1, keep, True)
            b = grouped.masked_fill(~mask[..., None], float("-inf")).view(b.shape[0], -1)
        bs = torch.sort(b, dim=-1, descending=True).values
        k = cfg.num_experts_per_tok
        margins.append((bs[:, k - 1] - bs[:, k]).min().item())

    handles = [l.mlp.gate.register_forward_hook(hook) for l in model.layers if hasattr(l.mlp, "gate")]
    model(ids)
    for h in handles:
        h.remove()
    return min(margins)


def greedy(model, ids, n):
    """Returns the n greedy ids and the smallest top-1 minus top-2 logit gap along the way."""
    ids = list(ids)
    out, min_gap = [], float("inf")
    for _ in range(n):
        last = model(ids)[-1]
        top2 = torch.topk(last, 2).values
        min_gap = min(min_gap, (top2[0] - top2[1]).item())
        nxt = int(torch.argmax(last).item())  # first maximum = lowest id on ties
        out.append(nxt)
        ids.append(nxt)
    return out, min_gap


def golden_entry(model, sp, prompt, vocab):
    ids = sp.encode(prompt)
    assert sp.decode(ids) == prompt
    g, min_gap = greedy(model, ids, GREEDY_TOKENS)
    return {"prompt": prompt, "ids": ids, "shape": [len(ids), vocab],
            "greedy_ids": g, "greedy_text": sp.decode(g),
            "min_routing_margin": routing_margin(model, ids),
            "greedy_min_routing_margin": routing_margin(model, ids + g),
            "greedy_min_logit_gap": min_gap}


def clears_guard(e):
    return (e["min_routing_margin"] >= MIN_PROMPT_ROUTING_MARGIN
            and e["greedy_min_routing_margin"] >= MIN_GREEDY_ROUTING_MARGIN
            and e["greedy_min_logit_gap"] >= MIN_GREEDY_LOGIT_GAP)


def choose_prompt(model, sp, candidates, vocab):
    """The first candidate that clears the near-tie guard; if none does, the one with the
    largest prompt routing margin, with a loud warning (the README must then say so)."""
    tried = []
    for prompt in candidates:
        e = golden_entry(model, sp, prompt, vocab)
        if clears_guard(e):
            return e
        print(f"near-tie guard rejects {prompt!r}: margins {e['min_routing_margin']:.3g} / "
              f"{e['greedy_min_routing_margin']:.3g}, logit gap {e['greedy_min_logit_gap']:.3g}")
        tried.append(e)
    best = max(tried, key=lambda e: e["min_routing_margin"])
    print(f"WARNING: no candidate clears the near-tie guard; using {best['prompt']!r}")
    return best


def heldout_perplexity(model, ids):
    """Consecutive non-overlapping windows of PPL_WINDOW tokens, each from an empty context;
    mean NLL over every token that has a predecessor in its window."""
    nll, count = 0.0, 0
    for s in range(0, len(ids), PPL_WINDOW):
        w = ids[s:s + PPL_WINDOW]
        if len(w) < 2:
            continue
        logits = model(w)
        nll += F.cross_entropy(logits[:-1], torch.tensor(w[1:]), reduction="sum").item()
        count += len(w) - 1
    return math.exp(nll / count), count


def training_summary(ck):
    """Steps and wall time of every phase (log entries carry "phase"; a phase's last entry is
    marked "final"), and their totals."""
    phases = [{"phase": e.get("phase", 1), "steps": e["step"], "seconds": e["elapsed"],
               "val_loss": e["val_loss"]} for e in ck["log"] if e.get("final")]
    return {"steps": sum(p["steps"] for p in phases),
            "seconds": round(sum(p["seconds"] for p in phases), 1),
            "phases": phases, "final": ck["log"][-1] if ck["log"] else None}


def main():
    torch.set_num_threads(1)
    with open(os.path.join(ROOT, "config.json")) as f:
        cfg = json.load(f)
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "ckpt", "last.pt"),
                    help="checkpoint of the last training phase")
    ap.add_argument("--prior-log", default=None,
                    help="train_log.json of the phases before a phase started from exported "
                         "weights (train.py --init-weights), kept in front of its log")
    args = ap.parse_args()
    ck = torch.load(args.ckpt)
    if args.prior_log:
        present = {e.get("phase", 1) for e in ck["log"]}
        with open(args.prior_log) as f:
            prior = [e for e in json.load(f) if e.get("phase", 1) not in present]
        ck["log"] = prior + ck["log"]
    trained = Megrez2ForCausalLM(cfg)
    trained.load_state_dict(ck["model"])
    st_path = os.path.join(ROOT, "model.safetensors")
    n = export_safetensors(trained, st_path)
    print(f"wrote {n} tensors, {os.path.getsize(st_path)} bytes")

    model = load_exported(cfg, st_path)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(ROOT, "tokenizer.model"))
    gdir = os.path.join(ROOT, "golden")
    os.makedirs(gdir, exist_ok=True)
    entries = []
    routing_doc = None
    for i, candidates in enumerate(PROMPT_SLOTS):
        chosen = choose_prompt(model, sp, candidates, cfg["vocab_size"])
        ids = chosen["ids"]
        logits, routing = model(ids, return_routing=True)
        fname = f"logits_{i}.f32"
        logits.contiguous().numpy().astype("<f4").tofile(os.path.join(gdir, fname))
        entries.append({k: chosen[k] for k in ("prompt", "ids")} | {"file": fname}
                       | {k: v for k, v in chosen.items() if k not in ("prompt", "ids")})
        print(repr(chosen["prompt"]), "->", repr(chosen["greedy_text"]),
              f"(margins {chosen['min_routing_margin']:.3g} / "
              f"{chosen['greedy_min_routing_margin']:.3g}, "
              f"gap {chosen['greedy_min_logit_gap']:.3g})")
        if i == 0:
            routing_doc = {"prompt_index": 0,
                           "experts": {str(l): r.tolist() for l, r in routing.items()}}

    with open(os.path.join(ROOT, "heldout.txt"), encoding="utf-8") as f:
        held_ids = sp.encode(f.read())
    ppl_ok, count = heldout_perplexity(model, held_ids)
    model.route_from_own_layer = True
    ppl_wrong, _ = heldout_perplexity(model, held_ids)
    model.route_from_own_layer = False
    biases = [l.mlp.gate.e_score_correction_bias for l in model.layers if hasattr(l.mlp, "gate")]
    saved = [b.clone() for b in biases]
    for b in biases:
        b.zero_()
    ppl_nobias, _ = heldout_perplexity(model, held_ids)
    for b, v in zip(biases, saved):
        b.copy_(v)
    print(f"held-out perplexity: pre-gated {ppl_ok:.4f}, own-layer routing {ppl_wrong:.4f}, "
          f"router bias ignored {ppl_nobias:.4f}")

    golden = {
        "model": "megrez2-tiny",
        "format": "each file: raw float32 little-endian logits, row-major [len(ids), vocab_size]",
        "vocab_size": cfg["vocab_size"],
        "weights": "model.safetensors as shipped (bf16 -> fp32 exactly; router bias f32); "
                   "computed in fp32 by train/megrez2.py",
        "greedy": f"{GREEDY_TOKENS} tokens, argmax of the last row (lowest id on ties), "
                  "no stop on <|eos|>, full recompute each step",
        "prompts": entries,
        "routing": dict(routing_doc, note="experts[layer][position] = the k chosen expert ids "
                        "of that MoE layer, in descending biased-score order"),
        "heldout_perplexity": {
            "file": "heldout.txt", "tokenization": "whole file, one encode, no BOS",
            "window": PPL_WINDOW, "predicted_tokens": count,
            "method": "consecutive non-overlapping windows from an empty context; "
                      "exp(mean NLL of every token after the first of its window)",
            "pre_gated": round(ppl_ok, 4), "route_from_own_layer": round(ppl_wrong, 4),
            "router_bias_ignored": round(ppl_nobias, 4)},
        "training": training_summary(ck),
    }
    with open(os.path.join(gdir, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
    with open(os.path.join(HERE, "train_log.json"), "w") as f:
        json.dump(ck["log"], f, indent=0)


if __name__ == "__main__":
    main()
