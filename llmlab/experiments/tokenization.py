"""Experiment `tokenization`: the same text, cut by every tokenizer we have.

Claim (primer, "tokens"): how text is cut depends on the tokenizer. Splitting on spaces leaves a
Mandarin sentence (no spaces) as one unknown token; characters give the most tokens; BERT's
WordPiece puts every CJK character in its own token; SmolLM2's byte-level BPE, trained mostly on
English, spends more tokens per character on Mandarin than on English.

Tokenizers: whitespace, word, char (bundled vocabularies, llmlab.tokenize.simple), SmolLM2's BPE
(GGUF), MiniLM's WordPiece (vocab.txt; [CLS]/[SEP] not counted), and a byte-level BPE trained here
(quick: 512 tokens on the package's English text; full: 2,048 tokens on the first 90% of tiny
shakespeare). Full runs also count tokens on real text: the last 10% of tiny shakespeare and the
500 sentences of UD Chinese-GSDSimp dev.
Test: tests/experiments/test_experiments.py::test_tokenization.
"""

from llmlab.experiments import EXPERIMENTS
from llmlab.experiments.common import Report, data_path, new_figure, png, setup_block, table

NAME = "tokenization"
CLAIM = EXPERIMENTS[NAME].claim
SAMPLES = {
    "English": "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun.",
    "Mandarin": "我们今天下午去公园散步，然后在湖边喝茶。",
    "code": 'def greet(name):\n    return f"Hello, {name}!"\n',
    "emoji": "Great job 👍🏽 see you tonight 🍕🎉 with the family 👨‍👩‍👧",
}
NAMED = ["whitespace", "word", "char", "smollm2", "minilm"]
VISIBLE = str.maketrans({" ": "·", "\n": "↵", "\t": "→"})


def trained_bpe(quick: bool):
    """(tokenizer, description, held-out text or None): a byte-level BPE trained on English here."""
    from llmlab.tokenize import train_bpe

    if quick:
        from llmlab.experiments.texts import english_text

        text = english_text()
        tok = train_bpe([text], 512, progress=False, name="bpe-trained")
        about = f"byte-level BPE, 512 tokens, trained here on the package's English text ({len(text):,} chars)"
        return tok, about, None
    path = data_path("tinyshakespeare", "input.txt", what="tiny shakespeare")
    text = path.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    tok = train_bpe([text[:cut]], 2048, progress=False, name="bpe-trained")
    return tok, f"byte-level BPE, 2,048 tokens, trained here on the first 90% of tiny shakespeare ({cut:,} chars)", \
        text[cut:]


def measure(tok, text: str) -> dict:
    """Token count, pieces (as the tokenizer stores them) and unknown tokens of one text."""
    ids = tok.encode(text)
    if tok.kind == "wordpiece" and getattr(tok, "add_special_tokens", False):
        ids = ids[1:-1]  # [CLS] ... [SEP]: added by the model's convention, not cut from the text
    unk = getattr(tok, "unk_id", None)
    pieces = [tok.display_token(i) for i in ids]
    return {"tokens": len(ids), "chars": len(text), "unknown": sum(i == unk for i in ids) if unk is not None else 0,
            "pieces": pieces}


def ud_chinese_text() -> str:
    path = data_path("chinese", "ud_gsdsimp", "zh_gsdsimp-ud-dev.conllu", what="UD Chinese-GSDSimp dev")
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line.split("=", 1)[1].strip() for line in lines if line.startswith("# text ="))


def run(quick: bool = False, seed: int = 0) -> Report:
    from llmlab.tokenize import load_tokenizer

    bpe, bpe_text, held_out = trained_bpe(quick)
    tokenizers = {name: load_tokenizer(name) for name in NAMED} | {"bpe-trained": bpe}
    texts = dict(SAMPLES)
    if not quick:
        texts["shakespeare (held out)"] = held_out
        texts["UD Chinese (500 sent.)"] = ud_chinese_text()
    m = {(t, s): measure(tok, text) for t, tok in tokenizers.items() for s, text in texts.items()}

    rows = [[s, t, m[t, s]["tokens"], m[t, s]["chars"] / max(m[t, s]["tokens"], 1), m[t, s]["unknown"]]
            for s in texts for t in tokenizers]
    most = {s: max(tokenizers, key=lambda t: m[t, s]["tokens"]) for s in texts}
    zh = SAMPLES["Mandarin"]
    checks = {
        "whitespace_mandarin_tokens": m["whitespace", "Mandarin"]["tokens"],
        "char_most_english": most["English"] == "char",
        "char_most_code": most["code"] == "char",
        "wordpiece_cjk_per_char": m["minilm", "Mandarin"]["tokens"] == len(zh)
        and all(len(p) == 1 or p == "[UNK]" for p in m["minilm", "Mandarin"]["pieces"]),
        "smollm2_tokens_per_char_en": m["smollm2", "English"]["tokens"] / len(SAMPLES["English"]),
        "smollm2_tokens_per_char_zh": m["smollm2", "Mandarin"]["tokens"] / len(zh),
    }

    md = [f"# Experiment: {NAME}\n", f"Claim: {CLAIM}\n",
          setup_block(NAME, quick, seed, [
              "tokenizers: " + ", ".join(f"`{t}`" for t in tokenizers) + f" (`bpe-trained`: {bpe_text})",
              "samples: written in llmlab/experiments/tokenization.py" + (
                  "" if quick else "; plus tiny shakespeare's last 10% and UD Chinese-GSDSimp dev (`# text` lines)"),
              "MiniLM's [CLS] and [SEP] are not counted; unknown = ids of the tokenizer's unknown token",
              f"seed {seed} (nothing here is random)"]),
          "## Token counts\n", table(["text", "tokenizer", "tokens", "chars / token", "unknown"], rows),
          "\n![tokens per sample](tokens.png)\n", "## Pieces\n"]
    for s in ("English", "Mandarin", "emoji"):
        md.append(f"`{SAMPLES[s]}`\n")
        md.append(table(["tokenizer", "pieces"], [[t, "`" + "|".join(m[t, s]["pieces"]).translate(VISIBLE) + "`"]
                                                  for t in tokenizers]))
    en, zh_rate = checks["smollm2_tokens_per_char_en"], checks["smollm2_tokens_per_char_zh"]
    md += ["\n## What the numbers say\n",
           f"- whitespace: the Mandarin sentence (no spaces) is {checks['whitespace_mandarin_tokens']} token"
           f"{'s' if checks['whitespace_mandarin_tokens'] != 1 else ''}, and "
           f"{m['whitespace', 'Mandarin']['unknown']} of them unknown.",
           "- most tokens per text: " + ", ".join(f"{s}: `{t}`" for s, t in most.items())
           + ". Characters give the most on English and code; where a character takes several UTF-8 bytes "
             "(Mandarin, emoji), byte-level BPEs without merges for them can need more tokens than characters.",
           f"- WordPiece on Mandarin: {m['minilm', 'Mandarin']['tokens']} tokens for {len(zh)} characters "
           f"({'one per character' if checks['wordpiece_cjk_per_char'] else 'NOT one per character'}), "
           f"{m['minilm', 'Mandarin']['unknown']} of them [UNK].",
           f"- SmolLM2 BPE: {en:.3f} tokens per character on English, {zh_rate:.3f} on Mandarin "
           f"({zh_rate / en:.1f}x)." + ("" if zh_rate > en else " The expected effect does NOT appear here."),
           ""]
    headline = {"whitespace tokens, Mandarin": checks["whitespace_mandarin_tokens"],
                "most tokens (English)": most["English"],
                "SmolLM2 tokens/char English": round(en, 3), "SmolLM2 tokens/char Mandarin": round(zh_rate, 3),
                "MiniLM tokens / chars, Mandarin": f"{m['minilm', 'Mandarin']['tokens']} / {len(zh)}"}
    for s in list(texts)[len(SAMPLES):]:  # the real texts of the full run
        headline[f"SmolLM2 tokens/char, {s}"] = round(m["smollm2", s]["tokens"] / m["smollm2", s]["chars"], 3)
    return Report(NAME, CLAIM, headline, "\n".join(md), {"tokens.png": plot(m, list(tokenizers), list(texts))},
                  checks)


def plot(m: dict, tokenizers: list[str], texts: list[str]) -> bytes:
    import numpy as np

    fig = new_figure(10, 6.5)
    top, bottom = fig.subplots(2, 1)
    x = np.arange(len(texts))
    width = 0.8 / len(tokenizers)
    for k, t in enumerate(tokenizers):
        counts = [m[t, s]["tokens"] for s in texts]
        per_char = [m[t, s]["tokens"] / max(m[t, s]["chars"], 1) for s in texts]
        top.bar(x + k * width, counts, width, label=t)
        bottom.bar(x + k * width, per_char, width, label=t)
    for ax, label in ((top, "tokens"), (bottom, "tokens per character")):
        ax.set_xticks(x + width * (len(tokenizers) - 1) / 2, texts)
        ax.set_ylabel(label)
        ax.set_yscale("log")
    top.set_title("The same texts, cut by each tokenizer")
    top.legend(ncols=3, fontsize=8)
    return png(fig)

