#!/bin/sh
# Rebuild the bundled tiny Megrez2 from nothing: data, tokenizer, training (~40 min on one
# CPU thread), export and golden data. Run from anywhere, as root or with sudo available.
#   models/megrez2-tiny/train/rebuild.sh [training minutes, default 40]
# Results are bit-identical only on the same torch build and CPU; the golden data always
# matches the model.safetensors written by the same run.
set -eu
cd "$(dirname "$0")"
MINUTES="${1:-40}"
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
rm -rf ckpt
/usr/bin/python3 train.py --minutes "$MINUTES" --lr 2.5e-3 | tee train.log
/usr/bin/python3 export.py
ls -l .. ../golden
