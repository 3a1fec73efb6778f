#!/usr/bin/python3
"""Train the tiny Megrez2 on data/train.txt for a fixed wall-clock budget (single CPU thread).

Data stream: every chapter is tokenized (verses joined by "\n") and followed by <|eos|>;
batches are random windows of SEQ+1 tokens from the concatenated stream. No BOS.
Schedule: linear warm-up, then cosine decay driven by ELAPSED TIME (so the run ends at the
lowest LR exactly when the budget is spent). Router bias: aux-loss-free load balancing
(DeepSeek-V3): after every step, bias_e += GAMMA * sign(mean_load - load_e) per layer.
Checkpoints (model, optimizer, step, elapsed, log) go to ckpt/last.pt every few minutes;
--resume continues a crashed run with the same time budget.
--init-from CKPT starts a NEW phase from a finished run: weights, router biases, AdamW moments
and the data-sampling RNG are taken from CKPT, while the step counter, clock, warm-up and
cosine schedule start afresh (peak --lr, floor --lr-floor); the new phase checkpoints into
--ckpt-dir and keeps the earlier phases' log entries (tagged with their phase number).
--init-weights FILE.safetensors starts a new phase from exported weights (fresh AdamW moments).
--chat FILE.jsonl (prepare_chat.py) makes the phase a chat phase: of each batch, --chat-rows
rows are packed chat conversations, each row starting at a conversation's first token (so the
first one sits at position 0 as in real use), conversations drawn with the TASK_WEIGHTS
below and rendered in the model's chat template; only the assistant's tokens and its
<|turn_end|> are targets there. The other rows are plain-text windows as before, every token
a target, so the language model does not decay.
"""
import argparse
import json
import math
import os
import random
import sys
import time

# One compute thread: torch.set_num_threads(1) alone still lets OpenBLAS start a helper thread,
# and the machine is shared with C++ builds.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sentencepiece as spm
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
from megrez2 import Megrez2ForCausalLM  # noqa: E402

# Chat phase: share of the conversations drawn per task. The genealogy facts are few (about
# a hundred), so they are drawn far more often than their share of the file.
TASK_WEIGHTS = {"lookup": 0.15, "complete": 0.2, "next": 0.15, "book": 0.2, "father": 0.15,
                "dialogue": 0.15}
GAMMA = 1e-3          # router bias update step
WEIGHT_DECAY = 0.1


def load_config():
    with open(os.path.join(HERE, "..", "config.json")) as f:
        return json.load(f)


def token_stream(sp, path, eos_id):
    ids = []
    with open(path, encoding="utf-8") as f:
        for chapter in f.read().split("\n\n"):
            chapter = chapter.strip("\n")
            if chapter:
                ids.extend(sp.encode(chapter))
                ids.append(eos_id)
    return torch.tensor(ids, dtype=torch.long)


def render_chat(sp, messages):
    """Token ids of a conversation in the chat template, and per token whether it is a target
    (assistant content and its closing <|turn_end|>). The segments are encoded one by one; the
    special tokens split the text exactly so, as in the runtime's tokenizer."""
    ids, target = [], []
    for m in messages:
        head = sp.encode(f"<|role_start|>{m['role']}<|role_end|>")
        body = sp.encode(m["content"]) + sp.encode("<|turn_end|>")
        ids += head + body
        target += [False] * len(head) + [m["role"] == "assistant"] * len(body)
    return ids, target


class ChatData:
    def __init__(self, sp, path, eos_id):
        self.by_task = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                c = json.loads(line)
                self.by_task.setdefault(c["task"], []).append(render_chat(sp, c["messages"]))
        self.tasks = sorted(self.by_task)
        self.weights = torch.tensor([TASK_WEIGHTS[t] for t in self.tasks])
        self.eos_id = eos_id

    def row(self, seq, gen):
        ids, target = [], []
        while len(ids) < seq + 1:
            task = self.tasks[int(torch.multinomial(self.weights, 1, generator=gen))]
            convs = self.by_task[task]
            c_ids, c_target = convs[int(torch.randint(len(convs), (1,), generator=gen))]
            ids += c_ids + [self.eos_id]
            target += c_target + [False]
        return torch.tensor(ids[:seq + 1]), torch.tensor(target[:seq + 1])


def batch(stream, bsz, seq, gen):
    starts = torch.randint(0, len(stream) - seq - 1, (bsz,), generator=gen)
    x = torch.stack([stream[s:s + seq + 1] for s in starts.tolist()])
    return x[:, :-1], x[:, 1:]


def evaluate(model, stream, seq):
    """Mean next-token loss over consecutive non-overlapping windows of the whole stream."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(stream) - seq - 1, seq):
            x = stream[s:s + seq + 1]
            logits = model.forward_batch(x[None, :-1])
            total += F.cross_entropy(logits[0], x[1:], reduction="sum").item()
            count += seq
    model.train()
    return total / count


def lr_at(step, frac, peak, floor, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * min(frac, 1.0)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=35.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--ckpt-every", type=float, default=180.0, help="seconds")
    ap.add_argument("--ckpt-dir", default=os.path.join(HERE, "ckpt"))
    ap.add_argument("--lr-floor", type=float, default=None, help="default 5%% of --lr")
    ap.add_argument("--warmup", type=int, default=60, help="warm-up steps")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-from", default=None, help="checkpoint of a finished phase")
    ap.add_argument("--init-weights", default=None, help="exported model.safetensors")
    ap.add_argument("--chat", default=None, help="chat conversations (prepare_chat.py)")
    ap.add_argument("--chat-rows", type=int, default=10, help="chat rows per batch")
    ap.add_argument("--phase", type=int, default=None, help="phase number for the log")
    ap.add_argument("--end-weight", type=float, default=1.0,
                    help="loss weight of the <|turn_end|> targets in chat rows (a reply's end is "
                         "one token of many; weighting it teaches replies to end)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    cfg = load_config()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(HERE, "..", "tokenizer.model"))
    train = token_stream(sp, os.path.join(HERE, "data", "train.txt"), sp.eos_id())
    val = token_stream(sp, os.path.join(HERE, "data", "val.txt"), sp.eos_id())
    print(f"train tokens {len(train)}  val tokens {len(val)}", flush=True)
    chat = ChatData(sp, args.chat, sp.eos_id()) if args.chat else None
    turn_end_id = sp.piece_to_id("<|turn_end|>")
    if chat:
        print("chat conversations", {t: len(c) for t, c in chat.by_task.items()}, flush=True)

    model = Megrez2ForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters {n_params}", flush=True)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)
    step, elapsed_before, log, phase = 0, 0.0, [], 1
    os.makedirs(args.ckpt_dir, exist_ok=True)
    last = os.path.join(args.ckpt_dir, "last.pt")
    if args.resume and os.path.exists(last):
        ck = torch.load(last)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed_before, log = ck["step"], ck["elapsed"], ck["log"]
        phase = ck.get("phase", 1)
        gen.set_state(ck["gen"])
        print(f"resumed phase {phase} at step {step}, {elapsed_before:.0f}s", flush=True)
    elif args.init_from:
        ck = torch.load(args.init_from)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["gen"])  # continue the sampling stream: no repeat of earlier batches
        phase = ck.get("phase", 1) + 1
        log = [dict(e, phase=e.get("phase", phase - 1)) for e in ck["log"]]
        print(f"phase {phase}: starting from {args.init_from} (its step {ck['step']}, "
              f"{ck['elapsed']:.0f}s)", flush=True)
    elif args.init_weights:
        tensors, _ = safetensors_io.read(args.init_weights)
        model.load_hf_state_dict(tensors)
        print(f"starting from the weights in {args.init_weights}", flush=True)
    if args.phase is not None and not args.resume:
        phase = args.phase
    floor = args.lr * 0.05 if args.lr_floor is None else args.lr_floor

    def save():
        tmp = last + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed_now(), "log": log, "gen": gen.get_state(), "phase": phase,
                    "config": cfg}, tmp)
        os.replace(tmp, last)

    budget = args.minutes * 60.0
    t0 = time.time()
    elapsed_now = lambda: elapsed_before + time.time() - t0  # noqa: E731
    last_ckpt = time.time()
    moe_layers = [l for l in range(cfg["num_hidden_layers"]) if model.cfg.is_moe(l)]
    E = cfg["n_routed_experts"]
    ema_loss = None
    model.train()
    while elapsed_now() < budget:
        lr = lr_at(step, elapsed_now() / budget, args.lr, floor, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(train, args.batch - (args.chat_rows if chat else 0), args.seq, gen)
        counted = torch.ones_like(y, dtype=torch.bool)
        if chat:
            rows = [chat.row(args.seq, gen) for _ in range(args.chat_rows)]
            chat_ids = torch.stack([r[0] for r in rows])
            x = torch.cat([x, chat_ids[:, :-1]])
            y = torch.cat([y, chat_ids[:, 1:]])
            counted = torch.cat([counted, torch.stack([r[1] for r in rows])[:, 1:]])
        logits, routing = model.forward_batch(x, return_routing=True)
        per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                    reduction="none")
        weight = counted.reshape(-1).float()
        if chat and args.end_weight != 1.0:
            weight = torch.where(y.reshape(-1) == turn_end_id, weight * args.end_weight, weight)
        loss = (per_token * weight).sum() / weight.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # aux-loss-free balancing of the router bias
            imbalance = 0.0
            for l in moe_layers:
                load = torch.bincount(routing[l].reshape(-1), minlength=E).float()
                gate = model.layers[l].mlp.gate
                gate.e_score_correction_bias += GAMMA * torch.sign(load.mean() - load)
                imbalance = max(imbalance, (load.max() / load.mean()).item())
        step += 1
        ema_loss = loss.item() if ema_loss is None else 0.95 * ema_loss + 0.05 * loss.item()
        if step % 20 == 0:
            el = elapsed_now()
            tok_s = step * args.batch * args.seq / max(el, 1e-9)
            entry = {"phase": phase, "step": step, "elapsed": round(el, 1),
                     "loss": round(ema_loss, 4),
                     "lr": lr, "max_load_ratio": round(imbalance, 2)}
            if step % 200 == 0:
                entry["val_loss"] = round(evaluate(model, val, args.seq), 4)
            log.append(entry)
            print(json.dumps(entry), f"tok/s {tok_s:.0f}", flush=True)
        if time.time() - last_ckpt > args.ckpt_every:
            save()
            last_ckpt = time.time()
    final_val = evaluate(model, val, args.seq)
    log.append({"phase": phase, "step": step, "elapsed": round(elapsed_now(), 1),
                "loss": round(ema_loss, 4),
                "val_loss": round(final_val, 4), "final": True})
    print(json.dumps(log[-1]), flush=True)
    save()
    print("done", flush=True)


if __name__ == "__main__":
    main()
