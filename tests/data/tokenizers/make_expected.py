#!/usr/bin/python3
"""Writes the byte-level BPE fixtures and the expected token ids for the tokenizer tests.

Independent of the C++ code on purpose: the pre-tokenizers are hand-written scanners over
Unicode categories (no regex engine), BPE is the classic "merge the best-ranked pair
everywhere, repeat" loop (the C++ side uses a priority queue), and the SentencePiece ids
come from the python sentencepiece module. Run once with /usr/bin/python3; outputs are
committed:
  bpe_qwen2.tokenizer.json, bpe_qwen2.tokenizer_config.json  (Qwen2 Split + ByteLevel, "a b" merges)
  bpe_gpt2.tokenizer.json                                    (ByteLevel use_regex, [a, b] merges)
  bpe_expected.json, spm_expected.json
"""
import json
import os
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# ---------------------------------------------------------------------------------------
# GPT-2 byte <-> unicode mapping, from its definition: printable Latin-1 bytes map to
# themselves, the other 68 bytes to U+0100.. in byte order.


def bytes_to_unicode():
    keep = (list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100)))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


BYTE_CHAR = bytes_to_unicode()


def byte_chars(text):
    return "".join(BYTE_CHAR[b] for b in text.encode("utf-8"))

# ---------------------------------------------------------------------------------------
# Fixture vocabulary: ids 0..255 are the byte symbols in byte order, then one id per merge
# result in merge order, then (after a gap, like Megrez's 120000..120005) the specials.

MERGES = [
    ("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("l", "l"), ("e", "ll"), ("H", "ell"),
    ("Hell", "o"), ("o", "r"), ("Ġ", "w"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld"),
    ("'", "ll"), ("O", "N"), ("D", "ON"), ("'", "T"), ("i", "n"), ("Ġ", "in"),
    ("Ċ", "Ċ"), ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"),
    ("ä", "½"), ("ä½", "ł"), ("å", "¥"), ("å¥", "½"), ("ä½ł", "å¥½"),  # 你, 好, 你好
    ("ð", "Ł"),                                                      # first half of 4-byte emoji
    ("1", "2"), ("a", "a"), ("aa", "aa"), ("b", "c"), ("a", "b"),
    ("a", "t"), ("o", "n"), ("i", "on"), ("at", "ion"), ("e", "r"), ("t", "er"),
    ("in", "ter"), ("Ġin", "ter"), ("n", "a"), ("na", "t"), ("i", "z"), ("iz", "ation"),
    ("a", "l"), ("Ġ", "ĊĊ"), ("ĉ", "ĉ"),
]
SPECIALS = [(400, "<|eos|>"), (401, "<|unk|>"), (402, "<|pad|>"), (403, "<|role_start|>"),
            (404, "<|role_end|>"), (405, "<|turn_end|>")]
PLAIN_ADDED = [(406, "<|note|>")]  # an added token that is not special: always matched


def build_vocab():
    vocab = {BYTE_CHAR[b]: b for b in range(256)}
    merges = []
    for a, b in MERGES:
        assert (a, b) not in merges, (a, b)
        assert a in vocab and b in vocab, (a, b)
        merges.append((a, b))
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    assert len(vocab) < SPECIALS[0][0]
    return vocab, merges

# ---------------------------------------------------------------------------------------
# Pre-tokenizers as explicit scanners.


def is_letter(c):
    return unicodedata.category(c).startswith("L")


def is_number(c):
    return unicodedata.category(c).startswith("N")


def is_space(c):  # PCRE2 10.42 \s under UCP: HT LF VT FF CR NEL, U+180E, or category Z
    return c in "\t\n\v\f\r \x85\u180e" or unicodedata.category(c) in ("Zs", "Zl", "Zp")


CONTRACTIONS = ["s", "t", "re", "ve", "m", "ll", "d"]


def match_contraction(t, i, ignore_case):
    if t[i] != "'":
        return 0
    for c in CONTRACTIONS:
        after = t[i + 1:i + 1 + len(c)]
        if (after.lower() if ignore_case else after) == c:
            return 1 + len(c)
    return 0


def run_end(t, i, pred):
    while i < len(t) and pred(t[i]):
        i += 1
    return i


def match_space_alternatives(t, i, with_newline_rule):
    """\\s*[\\r\\n]+ (Qwen2/Llama-3 only), then \\s+(?!\\S), then \\s+."""
    j = run_end(t, i, is_space)
    if j == i:
        return 0
    if with_newline_rule:
        last_nl = max((k for k in range(i, j) if t[k] in "\r\n"), default=-1)
        if last_nl >= 0:
            return last_nl + 1 - i
    if j == len(t):
        return j - i
    if j - i >= 2:
        return j - 1 - i
    return j - i


def is_other(c):
    return not (is_space(c) or is_letter(c) or is_number(c))


def qwen2_match(t, i, max_digits=1):
    n = match_contraction(t, i, True)
    if n:
        return n
    # [^\r\n\p{L}\p{N}]?\p{L}+
    c = t[i]
    if c not in "\r\n" and not is_letter(c) and not is_number(c) and i + 1 < len(t) \
            and is_letter(t[i + 1]):
        return run_end(t, i + 1, is_letter) - i
    if is_letter(c):
        return run_end(t, i, is_letter) - i
    if is_number(c):
        return min(run_end(t, i, is_number) - i, max_digits)
    # " ?[^\s\p{L}\p{N}]+[\r\n]*"
    start = i + 1 if c == " " and i + 1 < len(t) and is_other(t[i + 1]) else i
    if is_other(t[start]):
        j = run_end(t, start, is_other)
        j = run_end(t, j, lambda ch: ch in "\r\n")
        return j - i
    return match_space_alternatives(t, i, True)


def gpt2_match(t, i):
    n = match_contraction(t, i, False)
    if n:
        return n
    start = i + 1 if t[i] == " " and i + 1 < len(t) else i
    for pred in (is_letter, is_number, is_other):
        if pred(t[start]):
            return run_end(t, start, pred) - i
    return match_space_alternatives(t, i, False)


def pre_tokenize(text, matcher):
    pieces, i = [], 0
    while i < len(text):
        n = matcher(text, i)
        assert n > 0, (text, i)
        pieces.append(text[i:i + n])
        i += n
    return pieces

# ---------------------------------------------------------------------------------------
# Classic BPE: repeatedly merge every occurrence of the lowest-ranked adjacent pair.


def bpe(word, ranks):
    symbols = list(word)
    while len(symbols) > 1:
        pairs = [(ranks.get((symbols[k], symbols[k + 1])), k) for k in range(len(symbols) - 1)]
        ranked = [r for r, _ in pairs if r is not None]
        if not ranked:
            break
        best = min(ranked)
        a, b = next((symbols[k], symbols[k + 1]) for r, k in pairs if r == best)
        merged, k = [], 0
        while k < len(symbols):
            if k + 1 < len(symbols) and symbols[k] == a and symbols[k + 1] == b:
                merged.append(a + b)
                k += 2
            else:
                merged.append(symbols[k])
                k += 1
        symbols = merged
    return symbols


def split_added(text, allow_special):
    """Leftmost-longest match of added tokens; specials only when allowed."""
    added = PLAIN_ADDED + (SPECIALS if allow_special else [])
    out, i, plain_start = [], 0, 0
    while i < len(text):
        best = max(((len(s), tid) for tid, s in added if text.startswith(s, i)), default=None)
        if best:
            if plain_start < i:
                out.append(text[plain_start:i])
            out.append(best[1])
            i += best[0]
            plain_start = i
        else:
            i += 1
    if plain_start < len(text):
        out.append(text[plain_start:])
    return out


def encode(text, allow_special, vocab, ranks, matcher):
    ids = []
    for part in split_added(text, allow_special):
        if isinstance(part, int):
            ids.append(part)
            continue
        for piece in pre_tokenize(part, matcher):
            ids.extend(vocab[s] for s in bpe(byte_chars(piece), ranks))
    return ids

# ---------------------------------------------------------------------------------------
# Fixture files.


def added_tokens_json():
    return [{"id": tid, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": special}
            for tid, s, special in [(t, s, True) for t, s in SPECIALS] +
            [(t, s, False) for t, s in PLAIN_ADDED]]


def tokenizer_json(vocab, merges, pre_tokenizer, array_merges):
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_tokens_json(),
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                    "use_regex": False},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None,
            "continuing_subword_prefix": None, "end_of_word_suffix": None,
            "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab,
            "merges": [[a, b] for a, b in merges] if array_merges else [f"{a} {b}" for a, b in merges],
        },
    }


QWEN2_PRE = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
GPT2_PRE = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}

MEGREZ_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|role_start|>' + message['role'] + '<|role_end|>' + message['content'] + '<|turn_end|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|role_start|>assistant<|role_end|>' }}{%- endif -%}")

CASES = [
    ("Hello world", True), ("Hello  world", True), ("the the", True), (" the", True),
    ("I'll", True), ("DON'T", True), ("don't", True), ("we'RE", True),
    ("你好", True), ("你好世界", True), ("🙂", True), ("a🙂b", True), ("é", True),
    ("a  \n\n  b", True), ("a\n\n\nb", True), ("x   ", True), ("\t\tindent", True),
    ("12345", True), ("abc123def", True), ("aaaaa", True), ("abc", True),
    ("internationalization", True), ("winterization", True), ("1.5 + 2.25!?", True),
    ("hello,world", True), ("  ", True), ("\n", True), ("", True), ("\r\n\r\n", True),
    ("<|role_start|>user<|role_end|>Hello world<|turn_end|>", True),
    ("<|role_start|>user<|role_end|>Hello world<|turn_end|>", False),
    ("<|eos|><|eos|>", True), ("<|eos|>", False), ("a<|note|>b", True), ("a<|note|>b", False),
    ("<|turn_end", True), ("<|role_start|><|role_end|>", True), ("  \u3000 x", True),
    ("Ünïcödé naïve café", True), ("Привет мир", True), ("مرحبا", True), ("a\u0301b", True),
    ("internationalization" * 20, True), ("1234567890" * 10, True), ("a" * 1001, True),
    ("say \"hi\" -- ok... (yes)\n\tdone", True),
]


def write_json(name, obj):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def bpe_fixtures():
    vocab, merges = build_vocab()
    ranks = {pair: r for r, pair in enumerate(merges)}
    write_json("bpe_qwen2.tokenizer.json", tokenizer_json(vocab, merges, QWEN2_PRE, False))
    write_json("bpe_gpt2.tokenizer.json", tokenizer_json(vocab, merges, GPT2_PRE, True))
    write_json("bpe_qwen2.tokenizer_config.json", {
        "bos_token": None, "eos_token": "<|eos|>", "pad_token": "<|pad|>",
        "unk_token": {"content": "<|unk|>", "special": True}, "chat_template": MEGREZ_TEMPLATE})
    expected = {"qwen2": [], "gpt2": []}
    for text, allow in CASES:
        expected["qwen2"].append({"text": text, "allow_special": allow, "ids":
                                  encode(text, allow, vocab, ranks, qwen2_match)})
        expected["gpt2"].append({"text": text, "allow_special": allow, "ids":
                                 encode(text, allow, vocab, ranks, gpt2_match)})
    write_json("bpe_expected.json", expected)


SPM_CASES = ["In the beginning God created the heaven and the earth.",
             "And God said, Let there be light: and there was light.",
             "  two  spaces  ", "numbers 12345 and 3.14", "你好, 世界 🙂", "tab\there\nnewline",
             "<|role_start|>user<|role_end|>Hi there<|turn_end|>", "<|eos|>", "x<|turn_end|>y",
             "Zebra quokka XYZZY", ""]


def spm_fixture():
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(HERE, "spm_kjv.model"))
    write_json("spm_expected.json", [
        {"text": t, "ids": sp.encode(t), "pieces": sp.encode(t, out_type=str)} for t in SPM_CASES])


if __name__ == "__main__":
    bpe_fixtures()
    spm_fixture()
