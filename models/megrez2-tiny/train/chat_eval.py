#!/usr/bin/python3
"""Chat evaluation of the exported tiny Megrez2 on the held-out conversations (prepare_chat.py).

For each task, up to --per-task held-out conversations (a fixed, seeded choice; all of them for
small tasks): the conversation up to its last assistant turn is rendered in the chat template
(earlier turns as in the data), then the reply is decoded greedily from ../model.safetensors
(bf16 widened to fp32, as the runtime reads it) for at most 64 tokens.
  ends      the reply ends with <|turn_end|> (or <|eos|>) within 64 tokens
  exact     the reply's text equals the expected answer exactly
Writes chat_eval.json and prints a Markdown table.
"""
import argparse
import collections
import json
import os
import random
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
from megrez2 import Megrez2ForCausalLM  # noqa: E402
from train import render_chat  # noqa: E402

MAX_REPLY = 64


def greedy_reply(model, ids, stop_ids):
    out = []
    for _ in range(MAX_REPLY):
        nxt = int(torch.argmax(model(ids + out)[-1]).item())
        if nxt in stop_ids:
            return out, True
        out.append(nxt)
    return out, False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-task", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with open(os.path.join(HERE, "..", "config.json")) as f:
        cfg = json.load(f)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(HERE, "..", "tokenizer.model"))
    tensors, _ = safetensors_io.read(os.path.join(HERE, "..", "model.safetensors"))
    model = Megrez2ForCausalLM(cfg)
    model.load_hf_state_dict(tensors)
    model.eval()
    stop_ids = {sp.piece_to_id("<|turn_end|>"), sp.eos_id()}

    by_task = collections.defaultdict(list)
    with open(os.path.join(HERE, "data", "chat_heldout.jsonl"), encoding="utf-8") as f:
        for line in f:
            c = json.loads(line)
            by_task[c["task"]].append(c)
    rng = random.Random(7)
    results, examples = {}, {}
    for task in sorted(by_task):
        convs = by_task[task]
        chosen = convs if len(convs) <= args.per_task else rng.sample(convs, args.per_task)
        ends = exact = 0
        for c in chosen:
            *context, answer = c["messages"]
            ids, _ = render_chat(sp, context)
            ids += sp.encode("<|role_start|>assistant<|role_end|>")
            reply, ended = greedy_reply(model, ids, stop_ids)
            text = sp.decode(reply)
            ends += ended
            exact += ended and text == answer["content"]
            examples.setdefault(task, []).append({"user": context[-1]["content"], "expected": answer["content"],
                                                  "reply": text, "ended": ended})
        results[task] = {"n": len(chosen), "ends": ends / len(chosen), "exact": exact / len(chosen)}
        print(f"{task}: n={len(chosen)} ends {ends}/{len(chosen)} exact {exact}/{len(chosen)}", flush=True)
    total = sum(r["n"] for r in results.values())
    overall_ends = sum(r["ends"] * r["n"] for r in results.values()) / total
    with open(os.path.join(HERE, "chat_eval.json"), "w") as f:
        json.dump({"tasks": results, "ends_overall": overall_ends, "n": total,
                   "examples": {t: e[:5] for t, e in examples.items()}}, f, indent=1, ensure_ascii=False)
    print("\n| task | held-out conversations | reply ends with <\\|turn_end\\|> within 64 tokens | exact match |")
    print("|---|---|---|---|")
    for task, r in results.items():
        print(f"| {task} | {r['n']} | {100 * r['ends']:.1f} % | {100 * r['exact']:.1f} % |")
    print(f"| all | {total} | {100 * overall_ends:.1f} % | |")


if __name__ == "__main__":
    main()
