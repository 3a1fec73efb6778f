#!/usr/bin/python3
"""Build the training text for the tiny Megrez2 model from two public-domain Bibles.

Sources (Debian packages, no network):
  KJV : `bible -f 'Gen1:1-Rev22:21'` (package bible-kjv), one verse per line "Ge1:1 text".
  WEB : `mod2imp engWEB2015eb` (packages libsword-utils + sword-text-web), SWORD import
        format: "$$$Book C:V" header lines followed by OSIS/XML verse text.

Cleaning (WEB): drop module/testament headers and every entry with chapter 0 or verse 0
(front matter, book introductions, chapter milestones) and the glossary appended to
Rev 22:21; delete <note>...</note> footnotes and
<title>...</title> headings; strip all remaining tags; normalise whitespace; remove the space a
deleted note can leave before punctuation. Typographic quotes/dashes (“ ” ‘ ’ —) are KEPT as
UTF-8, so the tokenizer sees multi-byte characters. Deuterocanonical books of the WEB are kept.

Documents: one document = one chapter of one translation, verses joined by "\n". Training
streams documents separated by the <|eos|> token (done in train.py, not in the text files,
where documents are separated by a blank line).

Splits (whole books, identical in both translations, so no verse of a held-out chapter is
seen in training in either wording):
  test : Ruth, Jonah, Philippians     -> data/test.txt (+ ../heldout.txt, the same text)
  val  : Haggai, Titus, Jude          -> data/val.txt
  train: everything else              -> data/train.txt
"""
import os
import re
import subprocess
import sys

TEST_BOOKS = {"Ruth", "Jonah", "Philippians"}
VAL_BOOKS = {"Haggai", "Titus", "Jude"}
# KJV abbreviations printed by `bible` for the books above.
KJV_NAMES = {"Ruth": "Ruth", "Jonah": "Jonah", "Phi": "Philippians",
             "Hag": "Haggai", "Titus": "Titus", "Jude": "Jude"}


def kjv_chapters():
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True,
                         capture_output=True, text=True).stdout
    chapters = {}  # (book, chapter) -> [verses], insertion ordered
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        ref, _, text = line.partition(" ")
        m = re.fullmatch(r"(\d?[A-Za-z]+)(\d+):(\d+)", ref)
        if not m:
            raise SystemExit(f"unexpected KJV line: {line[:60]!r}")
        book = KJV_NAMES.get(m.group(1), m.group(1))
        chapters.setdefault((book, int(m.group(2))), []).append(" ".join(text.split()))
    return chapters


def clean_osis(text):
    text = re.sub(r"<note\b[^>]*>.*?</note>", " ", text, flags=re.S)
    text = re.sub(r"<title\b[^>]*>.*?</title>", " ", text, flags=re.S)
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    text = re.sub(r" ([,.;:!?’”)])", r"\1", text)
    text = re.sub(r"([“‘(]) ", r"\1", text)
    return text.strip()


def web_chapters():
    out = subprocess.run(["mod2imp", "engWEB2015eb"], check=True,
                         capture_output=True, text=True).stdout
    chapters = {}
    key = None
    for line in out.splitlines():
        if line.startswith("$$$"):
            m = re.fullmatch(r"\$\$\$(.+) (\d+):(\d+)", line.strip())
            key = None
            if m and int(m.group(2)) > 0 and int(m.group(3)) > 0:
                key = (m.group(1), int(m.group(2)))
            continue
        if key is None:
            continue
        verse = clean_osis(line)
        # The module appends its glossary to the last verse of Revelation: cut it off.
        verse = verse.split(" The following words used in the World English Bible")[0]
        if verse:
            chapters.setdefault(key, []).append(verse)
    return chapters


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    data_dir = os.path.join(here, "data")
    os.makedirs(data_dir, exist_ok=True)
    splits = {"train": [], "val": [], "test": []}
    for source in (kjv_chapters(), web_chapters()):
        for (book, _chapter), verses in source.items():
            split = "test" if book in TEST_BOOKS else "val" if book in VAL_BOOKS else "train"
            splits[split].append("\n".join(verses))
    for name, docs in splits.items():
        with open(os.path.join(data_dir, name + ".txt"), "w", encoding="utf-8") as f:
            f.write("\n\n".join(docs) + "\n")
        print(f"{name}: {len(docs)} chapters, {sum(len(d) for d in docs)} chars")
    with open(os.path.join(here, "..", "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(splits["test"]) + "\n")


if __name__ == "__main__":
    sys.exit(main())
