#!/usr/bin/python3
"""Write ../tokenizer_config.json: special tokens and the Megrez chat template."""
import json
import os

import sentencepiece as spm

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sp = spm.SentencePieceProcessor(model_file=os.path.join(ROOT, "tokenizer.model"))
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|role_start|>' + message['role'] + '<|role_end|>' + message['content'] + '<|turn_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|role_start|>assistant<|role_end|>' }}{% endif %}")
specials = ["<|unk|>", "<|eos|>", "<|pad|>", "<|role_start|>", "<|role_end|>", "<|turn_end|>"]
config = {
    "tokenizer_class": "LlamaTokenizer",
    "add_bos_token": False,
    "add_eos_token": False,
    "add_prefix_space": False,
    "bos_token": None,
    "eos_token": "<|eos|>",
    "unk_token": "<|unk|>",
    "pad_token": "<|pad|>",
    "additional_special_tokens": ["<|role_start|>", "<|role_end|>", "<|turn_end|>"],
    "added_tokens_decoder": {str(sp.piece_to_id(t)): {"content": t, "special": True}
                             for t in specials},
    "model_max_length": 512,
    "chat_template": CHAT_TEMPLATE,
}
for t in specials:
    assert sp.id_to_piece(sp.piece_to_id(t)) == t, t
with open(os.path.join(ROOT, "tokenizer_config.json"), "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
