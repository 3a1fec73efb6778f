#!/usr/bin/python3
"""Train the SentencePiece BPE tokenizer (vocab 4096, byte fallback) on data/train.txt.

Ids: 0 <|unk|> (SentencePiece unk), 1 <|eos|> (SentencePiece eos, control), 2 <|pad|>
(control), 3 <|role_start|>, 4 <|role_end|>, 5 <|turn_end|> (user-defined: matched as single
tokens in input text), then 256 byte pieces <0x00>..<0xFF>, then the learned merges.
No BOS (bos_id = -1), as in Megrez2. No dummy-prefix space and identity normalisation, so
text (including "\n", kept as a token) round-trips byte for byte.
"""
import os
import sentencepiece as spm

here = os.path.dirname(os.path.abspath(__file__))
spm.SentencePieceTrainer.train(
    input=os.path.join(here, "data", "train.txt"),
    model_prefix=os.path.join(here, "..", "tokenizer"),
    model_type="bpe",
    vocab_size=4096,
    character_coverage=1.0,
    byte_fallback=True,
    unk_id=0, unk_piece="<|unk|>",
    eos_id=1, eos_piece="<|eos|>",
    pad_id=2, pad_piece="<|pad|>",
    bos_id=-1,
    user_defined_symbols=["<|role_start|>", "<|role_end|>", "<|turn_end|>"],
    split_digits=True,
    remove_extra_whitespaces=False,
    add_dummy_prefix=False,
    normalization_rule_name="identity",
    max_sentence_length=1 << 16,
    num_threads=1,
    minloglevel=1,
)
os.remove(os.path.join(here, "..", "tokenizer.vocab"))
sp = spm.SentencePieceProcessor(model_file=os.path.join(here, "..", "tokenizer.model"))
for s in ["In the beginning God created", "<|role_start|>user<|role_end|>hi<|turn_end|>",
          "你好，世界 🙂", "And God said,\nLet there be light."]:
    ids = sp.encode(s)
    assert sp.decode(ids) == s, (s, sp.decode(ids))
    print(len(ids), ids[:20])
print("vocab", sp.get_piece_size(), "eos", sp.eos_id(), "unk", sp.unk_id(), "bos", sp.bos_id())
