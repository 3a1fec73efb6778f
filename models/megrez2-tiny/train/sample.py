#!/usr/bin/python3
"""Print greedy and sampled continuations of a few prompts from the SHIPPED model
(../model.safetensors, bf16 -> fp32 exactly), for the README and for eyeballing a model.
Sampling: temperature 0.8, top-k 40, torch.Generator seeded per prompt (--seed), full
recompute each step (no KV cache), no stop on <|eos|>.
  /usr/bin/python3 sample.py [--tokens 48] [--seed 1] [prompt ...]
"""
import argparse
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from export import load_exported  # noqa: E402

DEFAULT_PROMPTS = ["In the beginning God created", "And Jesus said unto them,",
                   "The LORD is my shepherd;", "Then Moses went up"]


def continue_text(model, ids, n, gen=None, temperature=0.8, top_k=40):
    ids = list(ids)
    out = []
    with torch.no_grad():
        for _ in range(n):
            last = model(ids)[-1]
            if gen is None:
                nxt = int(torch.argmax(last).item())
            else:
                vals, idx = torch.topk(last / temperature, top_k)
                probs = torch.softmax(vals, dim=-1)
                nxt = int(idx[torch.multinomial(probs, 1, generator=gen)].item())
            out.append(nxt)
            ids.append(nxt)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("prompts", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with open(os.path.join(ROOT, "config.json")) as f:
        cfg = json.load(f)
    model = load_exported(cfg, os.path.join(ROOT, "model.safetensors"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(ROOT, "tokenizer.model"))
    for prompt in args.prompts or DEFAULT_PROMPTS:
        ids = sp.encode(prompt)
        greedy = continue_text(model, ids, args.tokens)
        gen = torch.Generator().manual_seed(args.seed)
        sampled = continue_text(model, ids, args.tokens, gen)
        print(json.dumps({"prompt": prompt, "greedy": sp.decode(greedy),
                          "sampled": sp.decode(sampled)}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
