"""Build the bundled vocabularies of the named `whitespace` and `word` tokenizers.

Source: public-domain English in ../shared/data (tiny shakespeare, the Gutenberg books,
the inaugural and State of the Union addresses). Keeps the 30,000 most frequent pieces
of each tokenizer (case kept), one per line, most frequent first.

    .venv/bin/python scripts/build_word_vocabs.py [--data ../shared/data] [--size 30000]
"""

import argparse
from pathlib import Path

from llmlab.fileio import atomic_write_text
from llmlab.tokenize.simple import VOCAB_DIR, WhitespaceTokenizer, WordTokenizer


def corpus(data: Path):
    files = [data / "tinyshakespeare" / "input.txt"]
    for part in ("gutenberg", "inaugural", "state_union"):
        files += sorted(p for p in (data / "corpus_en" / part).glob("*.txt"))
    for f in files:
        yield f.read_bytes().decode("utf-8", errors="replace")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    ap.add_argument("--size", type=int, default=30_000)
    args = ap.parse_args()
    for cls in (WhitespaceTokenizer, WordTokenizer):
        tok = cls.train(corpus(args.data), vocab_size=args.size, min_frequency=2)
        words = [w for w in tok.vocab if w != tok.unk_token]
        path = atomic_write_text(VOCAB_DIR / f"{cls.kind}.txt", "\n".join(words) + "\n")
        print(f"{path}: {len(words)} entries")


if __name__ == "__main__":
    main()
