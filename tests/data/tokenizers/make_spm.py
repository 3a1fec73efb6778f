#!/usr/bin/python3
"""Trains the small SentencePiece fixture tests/data/tokenizers/spm_kjv.model.

Run once with Debian's /usr/bin/python3 (python3-sentencepiece); the output is committed.
Corpus: Genesis and Exodus of the KJV from the `bible` program, verse references removed.
Identity normalisation and no whitespace folding, so decode(encode(s)) == s exactly;
byte fallback so any UTF-8 text (CJK, emoji) is representable; the Megrez chat specials as
user-defined symbols (single pieces, never split).
"""
import os
import subprocess
import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))

def corpus_lines():
    text = subprocess.run(["bible", "-f", "Gen1:1-Exo40:38"], check=True,
                          capture_output=True, text=True).stdout
    for line in text.splitlines():
        ref, _, verse = line.partition(" ")
        if verse:
            yield verse

def main():
    spm.SentencePieceTrainer.train(
        sentence_iterator=corpus_lines(),
        model_prefix=os.path.join(HERE, "spm_kjv"),
        model_type="unigram",
        vocab_size=1200,
        byte_fallback=True,
        character_coverage=1.0,
        user_defined_symbols=["<|eos|>", "<|role_start|>", "<|role_end|>", "<|turn_end|>"],
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        num_threads=1,
        minloglevel=2,
    )
    os.remove(os.path.join(HERE, "spm_kjv.vocab"))

if __name__ == "__main__":
    main()
