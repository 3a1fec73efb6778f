#!/bin/sh
# Rebuild the bundled tiny Megrez2 from nothing: data, tokenizer, training in two phases on
# one CPU thread, export and golden data. Run from anywhere, as root or with sudo available.
#   models/megrez2-tiny/train/rebuild.sh [phase-1 minutes, default 40] [phase-2 minutes, default 40]
# Phase 1: from scratch, peak LR 2.5e-3, 60 warm-up steps, cosine to 5 % (ckpt/).
# Phase 2: continues phase 1's weights, router biases, AdamW moments and data-sampling RNG
# with a fresh schedule: 20 warm-up steps to 1.5e-3, cosine to 1e-4 (ckpt2/).
# Both phases are budgeted in wall time, so the step counts (and the weights) depend on the
# CPU speed and load; the shipped run's counts are in ../README.md. Results are bit-identical
# only for the same steps on the same torch build and CPU; the golden data always matches the
# model.safetensors written by the same run.
set -eu
cd "$(dirname "$0")"
MINUTES1="${1:-40}"
MINUTES2="${2:-40}"
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
/usr/bin/python3 test_megrez2.py
rm -rf ckpt ckpt2
/usr/bin/python3 train.py --minutes "$MINUTES1" --lr 2.5e-3 --warmup 60 | tee train.log
/usr/bin/python3 train.py --init-from ckpt/last.pt --ckpt-dir ckpt2 --minutes "$MINUTES2" \
    --lr 1.5e-3 --lr-floor 1e-4 --warmup 20 | tee train2.log
/usr/bin/python3 export.py --ckpt ckpt2/last.pt
ls -l .. ../golden
