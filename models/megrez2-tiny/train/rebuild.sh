#!/bin/sh
# Rebuild the bundled tiny Megrez2 from nothing: data, tokenizer, training in three phases on
# the CPU, export, chat evaluation and golden data. Run from anywhere, as root or with sudo.
#   models/megrez2-tiny/train/rebuild.sh [phase-1 minutes, default 40] [phase-2 minutes, default 40]
#                                        [phase-3 minutes, default 60]
# Phase 1: from scratch, peak LR 2.5e-3, 60 warm-up steps, cosine to 5 % (ckpt/).
# Phase 2: continues phase 1's weights, router biases, AdamW moments and data-sampling RNG
# with a fresh schedule: 20 warm-up steps to 1.5e-3, cosine to 1e-4 (ckpt2/).
# Phase 3 (chat): from the weights phase 2 exported (bf16, as shipped then), fresh AdamW,
# 10 of 16 rows per batch chat conversations (prepare_chat.py: answers of at most 32 tokens),
# 6 plain text; 2 torch threads;
# 30 warm-up steps to 1e-3, cosine to 5e-5 (ckpt3/). Then the final export and chat_eval.py.
# (Earlier chat runs, tried and not shipped, are in ../README.md "Chat".)
# The phases are budgeted in wall time, so the step counts (and the weights) depend on the
# CPU speed and load; the shipped run's counts are in ../README.md. Results are bit-identical
# only for the same steps on the same torch build and CPU; the golden data always matches the
# model.safetensors written by the same run.
set -eu
cd "$(dirname "$0")"
MINUTES1="${1:-40}"
MINUTES2="${2:-40}"
MINUTES3="${3:-60}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# bible-kjv: KJV text + `bible`; sword-text-web + libsword-utils: WEB module + `mod2imp`;
# python3-torch (Debian torch 1.13) and python3-sentencepiece for /usr/bin/python3.
$SUDO apt-get install -y --no-install-recommends bible-kjv sword-text-web libsword-utils \
    python3-torch python3-sentencepiece python3-numpy libopenblas0-pthread
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
/usr/bin/python3 prepare_data.py
/usr/bin/python3 train_tokenizer.py
/usr/bin/python3 write_tokenizer_config.py
/usr/bin/python3 prepare_chat.py
/usr/bin/python3 test_megrez2.py
rm -rf ckpt ckpt2 ckpt3
/usr/bin/python3 train.py --minutes "$MINUTES1" --lr 2.5e-3 --warmup 60 | tee train.log
/usr/bin/python3 train.py --init-from ckpt/last.pt --ckpt-dir ckpt2 --minutes "$MINUTES2" \
    --lr 1.5e-3 --lr-floor 1e-4 --warmup 20 | tee train2.log
/usr/bin/python3 export.py --ckpt ckpt2/last.pt
/usr/bin/python3 train.py --init-weights ../model.safetensors \
    --chat data/chat_train.jsonl --ckpt-dir ckpt3 --phase 3 --threads 2 --minutes "$MINUTES3" \
    --lr 1e-3 --lr-floor 5e-5 --warmup 30 | tee train3.log
/usr/bin/python3 export.py --ckpt ckpt3/last.pt --prior-log train_log.json
/usr/bin/python3 chat_eval.py
ls -l .. ../golden
