#!/usr/bin/python3
"""Build the chat-phase data for the tiny Megrez2: checkable question/answer conversations
made from the same Debian Bibles as the plain text (run prepare_data.py first).

Tasks (every answer is exact and can be checked):
  lookup      "What does John 3:16 say?"                       -> the KJV verse
  complete    "Finish this verse: For God so loved the world," -> the rest of the KJV verse
  next        "What verse comes after this one? <verse>"      -> the next KJV verse
  book        "Which book is this verse from? <verse>"         -> "John." (KJV or WEB text)
  father      "Who was the father of Solomon?"                 -> "David." (from "X begat Y")
  dialogue    two turns whose second needs the first: the father's father
              ("And who was his father?"), or a lookup followed by "Which book is that from?"

Held-out splits: 4 % of the verse references of the training books (no chat example of any
task uses them in training) and 20 % of the children of the genealogy; a held-out dialogue
uses only held-out items in its first turn. The held-out books of the plain text (Ruth,
Jonah, Philippians, Haggai, Titus, Jude) never appear in either split. Verses whose answer
would exceed 32 tokens are left out, so every reply fits in 64 tokens with room to spare.

Output (data/): chat_train.jsonl and chat_heldout.jsonl, one conversation per line:
{"task": ..., "messages": [{"role": ..., "content": ...}, ...]}; the last message is always
the assistant's, and every assistant turn is a target. About a fifth of the conversations
start with a short system prompt, as the chat apps send one.
"""
import collections
import json
import os
import random
import re
import subprocess

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
HELDOUT_BOOKS = {"Ruth", "Jonah", "Phi", "Hag", "Titus", "Jude"}  # plain-text test + val
BOOK_NAMES = {
    "Ge": "Genesis", "Exo": "Exodus", "Lev": "Leviticus", "Num": "Numbers",
    "Deu": "Deuteronomy", "Josh": "Joshua", "Jdgs": "Judges", "Ruth": "Ruth",
    "1Sm": "1 Samuel", "2Sm": "2 Samuel", "1Ki": "1 Kings", "2Ki": "2 Kings",
    "1Chr": "1 Chronicles", "2Chr": "2 Chronicles", "Ezra": "Ezra", "Neh": "Nehemiah",
    "Est": "Esther", "Job": "Job", "Psa": "Psalms", "Prv": "Proverbs", "Eccl": "Ecclesiastes",
    "SSol": "Song of Solomon", "Isa": "Isaiah", "Jer": "Jeremiah", "Lam": "Lamentations",
    "Eze": "Ezekiel", "Dan": "Daniel", "Hos": "Hosea", "Joel": "Joel", "Amos": "Amos",
    "Obad": "Obadiah", "Jonah": "Jonah", "Mic": "Micah", "Nahum": "Nahum", "Hab": "Habakkuk",
    "Zep": "Zephaniah", "Hag": "Haggai", "Zec": "Zechariah", "Mal": "Malachi",
    "Mat": "Matthew", "Mark": "Mark", "Luke": "Luke", "John": "John", "Acts": "Acts",
    "Rom": "Romans", "1Cor": "1 Corinthians", "2Cor": "2 Corinthians", "Gal": "Galatians",
    "Eph": "Ephesians", "Phi": "Philippians", "Col": "Colossians", "1Th": "1 Thessalonians",
    "2Th": "2 Thessalonians", "1Tim": "1 Timothy", "2Tim": "2 Timothy", "Titus": "Titus",
    "Phmn": "Philemon", "Heb": "Hebrews", "Jas": "James", "1Pet": "1 Peter", "2Pet": "2 Peter",
    "1Jn": "1 John", "2Jn": "2 John", "3Jn": "3 John", "Jude": "Jude", "Rev": "Revelation",
}
# WEB (SWORD) book keys that differ from the display names above.
WEB_KEYS = {"I Samuel": "1 Samuel", "II Samuel": "2 Samuel", "I Kings": "1 Kings",
            "II Kings": "2 Kings", "I Chronicles": "1 Chronicles",
            "II Chronicles": "2 Chronicles", "Song of Solomon": "Song of Solomon",
            "I Corinthians": "1 Corinthians", "II Corinthians": "2 Corinthians",
            "I Thessalonians": "1 Thessalonians", "II Thessalonians": "2 Thessalonians",
            "I Timothy": "1 Timothy", "II Timothy": "2 Timothy", "I Peter": "1 Peter",
            "II Peter": "2 Peter", "I John": "1 John", "II John": "2 John",
            "III John": "3 John", "Revelation of John": "Revelation"}
SYSTEM_PROMPTS = ["You are a helpful assistant.", "Answer briefly.",
                  "You answer questions about the Bible."]
# The issue's own example must be a trained fact, so the README's chat shows it.
ALWAYS_TRAIN_CHILDREN = {"Solomon", "David", "Isaac", "Jacob"}
MAX_ANSWER_TOKENS = 32
HELDOUT_VERSE_SHARE = 0.04
HELDOUT_CHILD_SHARE = 0.2

LOOKUP = ["What does {ref} say?", "Quote {ref}.", "Recite {ref}."]
COMPLETE = ["Finish this verse: {head}", "Complete the verse: {head}"]
NEXT = ["What verse comes after this one? {verse}", "Continue with the next verse: {verse}"]
BOOK = ["Which book is this verse from? {verse}", "Which book of the Bible says: {verse}"]
FATHER = ["Who was the father of {child}?", "Who was {child}'s father?",
          "Whose son was {child}?"]
FOLLOW_FATHER = ["And who was his father?", "Who was his father?"]
FOLLOW_BOOK = ["Which book is that from?", "Which book is that in?"]


def kjv_verses():
    """[(book abbreviation, chapter, verse, text)] in canonical order."""
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True,
                         capture_output=True, text=True).stdout
    verses = []
    for line in out.splitlines():
        ref, _, text = line.strip().partition(" ")
        m = re.fullmatch(r"(\d?[A-Za-z]+)(\d+):(\d+)", ref)
        if m:
            verses.append((m.group(1), int(m.group(2)), int(m.group(3)), " ".join(text.split())))
    return verses


def web_verses():
    """{(display book name, chapter, verse): text} of the WEB, cleaned as in prepare_data."""
    from prepare_data import clean_osis
    out = subprocess.run(["mod2imp", "engWEB2015eb"], check=True,
                         capture_output=True, text=True).stdout
    verses, key = {}, None
    for line in out.splitlines():
        if line.startswith("$$$"):
            m = re.fullmatch(r"\$\$\$(.+) (\d+):(\d+)", line.strip())
            key = None
            if m and int(m.group(2)) > 0 and int(m.group(3)) > 0:
                key = (WEB_KEYS.get(m.group(1), m.group(1)), int(m.group(2)), int(m.group(3)))
            continue
        if key is not None:
            text = clean_osis(line).split(" The following words used in the World English")[0]
            if text:
                verses[key] = text
    return verses


def fathers(verses):
    """child -> father from "X begat Y" (KJV); a child with two different fathers is dropped."""
    seen = collections.defaultdict(collections.Counter)
    for _b, _c, _v, text in verses:
        for x, y in re.findall(r"\b([A-Z][a-z]+) begat ([A-Z][a-z]+)\b", text):
            if x not in ("And", "The", "Then") and y not in ("Sons", "Daughters"):
                seen[y][x] += 1
    return {c: f.most_common(1)[0][0] for c, f in seen.items() if len(f) == 1}


def strip_end(text):
    return text.rstrip(" .,;:")


def main():
    rng = random.Random(20261206)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(HERE, "..", "tokenizer.model"))
    fits = lambda s: len(sp.encode(s)) <= MAX_ANSWER_TOKENS  # noqa: E731
    kjv = [v for v in kjv_verses() if v[0] not in HELDOUT_BOOKS]
    web = web_verses()
    ref = lambda v: f"{BOOK_NAMES[v[0]]} {v[1]}:{v[2]}"  # noqa: E731
    heldout_refs = {ref(v) for v in kjv if rng.random() < HELDOUT_VERSE_SHARE}
    father_of = fathers(kjv_verses())
    children = sorted(father_of)
    heldout_children = {c for c in children
                        if c not in ALWAYS_TRAIN_CHILDREN and rng.random() < HELDOUT_CHILD_SHARE}

    def conv(task, *turns):
        msgs = []
        if rng.random() < 0.2:
            msgs.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        for user, answer in turns:
            msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return {"task": task, "messages": msgs}

    out = {"train": [], "heldout": []}
    for i, v in enumerate(kjv):
        book, text, r = BOOK_NAMES[v[0]], v[3], ref(v)
        split = "heldout" if r in heldout_refs else "train"
        if fits(text):
            out[split].append(conv("lookup", (rng.choice(LOOKUP).format(ref=r), text)))
            if rng.random() < 0.3:
                out[split].append(conv("dialogue", (rng.choice(LOOKUP).format(ref=r), text),
                                       (rng.choice(FOLLOW_BOOK), book + ".")))
        words = text.split()
        if len(words) >= 8:
            cut = len(words) // 2
            tail = " ".join(words[cut:])
            if fits(tail):
                head = " ".join(words[:cut])
                out[split].append(conv("complete", (rng.choice(COMPLETE).format(head=head), tail)))
        if i + 1 < len(kjv) and kjv[i + 1][0] == v[0] and fits(kjv[i + 1][3]) and fits(text):
            out[split].append(conv("next", (rng.choice(NEXT).format(verse=text), kjv[i + 1][3])))
        if fits(text):
            out[split].append(conv("book", (rng.choice(BOOK).format(verse=text), book + ".")))
        wtext = web.get((book, v[1], v[2]))
        if wtext and fits(wtext):
            out[split].append(conv("book", (rng.choice(BOOK).format(verse=wtext), book + ".")))
    for child in children:
        split = "heldout" if child in heldout_children else "train"
        f = father_of[child]
        # Each fact several times in training (a tiny model learns facts by repetition).
        for _ in range(1 if split == "heldout" else 6):
            out[split].append(conv("father", (rng.choice(FATHER).format(child=child), f + ".")))
        if f in father_of:
            for _ in range(1 if split == "heldout" else 3):
                out[split].append(conv("dialogue",
                                       (rng.choice(FATHER).format(child=child), f + "."),
                                       (rng.choice(FOLLOW_FATHER), father_of[f] + ".")))
    for split, convs in out.items():
        rng.shuffle(convs)
        path = os.path.join(HERE, "data", f"chat_{split}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for c in convs:
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
        counts = collections.Counter(c["task"] for c in convs)
        print(f"{split}: {len(convs)} conversations {dict(sorted(counts.items()))}")
    print(f"genealogy: {len(children)} children, {len(heldout_children)} held out; "
          f"verses: {len(kjv)}, {len(heldout_refs)} references held out")


if __name__ == "__main__":
    main()
