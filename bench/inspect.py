"""Measurements behind `llmlab ask` and `llmlab inspect`, on real data.

calibrate: the relevance threshold (llmlab.apps.ask.RELEVANCE). SciFact claims are split in
  two halves (seed 0): the abstracts relevant to the first half are chunked and embedded as
  `llmlab index` would (200-token chunks, overlap 40, MiniLM); for every claim the best chunk's
  cosine similarity is taken. First-half claims are answerable (their abstract is there),
  second-half claims are in-domain but unanswerable (their abstract is not), banking77
  customer questions are off-topic. The table shows what each threshold keeps and rejects.

answers: `ask` on 100 answerable SciFact claims over an index of their abstracts, with the
  answers' repetition penalty and without: answers that repeat a 4-word phrase, that stop at
  the token limit, that cite a passage.

checklist: `inspect --checklist` on a service agreement written for the check (in this file), 14
  items whose answers are known (6 yes, 6 no, 2 not addressed): verdicts that match.

summarize: DialogSum dev (the first N dialogues in file order), ROUGE-L F1 (longest common
  subsequence of lower-cased word tokens; Lin 2004, F with beta = 1) against the reference
  summary, for: SmolLM2's summary (`inspect(summary=True)`, int4, greedy) with the repetition
  penalty `inspect` uses and without it, the extractive central sentences (MiniLM centroid,
  3 sentences), and lead-3 (the first three sentences); and how many summaries repeat a
  4-word phrase (a repeated lower-cased word 4-gram).

speeches (not in the default run: ~20 min): documents longer than the context window, every
  8th State of the Union address of the English corpus (9 files, one of them not UTF-8 and
  skipped; 2k-9k tokens, map-reduce summaries), with and without the penalty: how many final
  summaries repeat a 4-word phrase.

    .venv/bin/python bench/inspect.py [--data ../shared/data] [--only calibrate|answers|checklist|summarize|speeches]
        [-n 100]
"""

import os
import sys

# bench/inspect.py shares its name with the standard library's `inspect`: keep this folder off
# the import path so `import inspect` (dataclasses, torch, ...) finds the real module.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


# --- ROUGE-L -----------------------------------------------------------------------------------
def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def lcs(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j - 1] of the previous row
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(candidate: str, reference: str) -> float:
    c, r = words(candidate), words(reference)
    common = lcs(c, r)
    if common == 0:
        return 0.0
    precision, recall = common / len(c), common / len(r)
    return 2 * precision * recall / (precision + recall)


# --- calibrate ---------------------------------------------------------------------------------
def scifact(data: Path, n: int = 200):
    """SciFact train claims shuffled with seed 0: the first n (answerable: their abstracts are
    kept), the next n (unanswerable), and the abstracts of the first n as {id: title + text}."""
    folder = data / "retrieval" / "scifact"
    claims = {q["_id"]: q["text"] for q in map(json.loads, open(folder / "queries_train.jsonl", encoding="utf-8"))}
    relevant: dict[str, set[str]] = {}
    with open(folder / "qrels_train.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            relevant.setdefault(row["query-id"], set()).add(row["corpus-id"])
    ids = sorted(relevant, key=int)
    random.Random(0).shuffle(ids)
    present, absent = ids[:n], ids[n:2 * n]
    wanted = set().union(*(relevant[q] for q in present))
    docs = {}
    for part in sorted(folder.glob("corpus.part*.jsonl")):
        for d in map(json.loads, open(part, encoding="utf-8")):
            if d["_id"] in wanted:
                docs[d["_id"]] = f"{d['title']}\n\n{d['text']}"
    return claims, relevant, present, absent, docs


def calibrate(data: Path, n: int = 200) -> None:
    from llmlab.apps.ask import RELEVANCE
    from llmlab.apps.inspect import SENTENCE_RELEVANCE, split_sentences
    from llmlab.apps.search import chunk_text
    from llmlab.tokenize import load_tokenizer
    from llmlab.weights.registry import load_encoder

    claims, relevant, present, absent, docs = scifact(data, n)
    with open(data / "banking77" / "train.csv", encoding="utf-8", newline="") as f:
        banking = [r["text"] for r in csv.DictReader(f)]
    off_topic = random.Random(0).sample(banking, n)

    tok, encoder = load_tokenizer("smollm2"), load_encoder("minilm")
    chunks, owner = [], []
    for doc_id, text in docs.items():
        for c in chunk_text(text, tok, 200, 40):
            chunks.append(c)
            owner.append(doc_id)
    start = time.perf_counter()
    matrix = unit(encoder.encode(chunks).numpy())

    def best(texts):
        sims = unit(encoder.encode(texts).numpy()) @ matrix.T  # (queries, chunks)
        return sims.max(axis=1), sims.argmax(axis=1)

    sentences = [text[a:b] for text in docs.values() for a, b in split_sentences(text)]
    sentence_matrix = unit(encoder.encode(sentences).numpy())

    def best_sentence(texts):
        return (unit(encoder.encode(texts).numpy()) @ sentence_matrix.T).max(axis=1)

    answerable, top = best([claims[q] for q in present])
    hit = np.mean([owner[t] in relevant[q] for q, t in zip(present, top)])
    missing, _ = best([claims[q] for q in absent])
    unrelated, _ = best(off_topic)
    print(f"SciFact: {len(docs)} abstracts, {len(chunks)} chunks; {n} answerable claims (top chunk from a "
          f"relevant abstract for {hit:.1%}), {n} in-domain unanswerable, {n} banking77 off-topic questions; "
          f"{time.perf_counter() - start:.0f} s")
    print(f"best-chunk cosine, 5th / 50th / 95th percentile: answerable "
          f"{fmt(np.percentile(answerable, [5, 50, 95]))}, unanswerable {fmt(np.percentile(missing, [5, 50, 95]))}, "
          f"off-topic {fmt(np.percentile(unrelated, [5, 50, 95]))}")
    print(f"{'threshold':>9}  {'answerable kept':>15}  {'unanswerable rejected':>21}  {'off-topic rejected':>18}")
    for t in (0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50):
        mark = "  <- RELEVANCE" if abs(t - RELEVANCE) < 1e-9 else ""
        print(f"{t:9.2f}  {np.mean(answerable >= t):15.1%}  {np.mean(missing < t):21.1%}  "
              f"{np.mean(unrelated < t):18.1%}{mark}")
    # inspect reads one document: a question about one clause can be far from every 200-token chunk
    # (a chunk mixes clauses) and close to one sentence. Its gate: chunk >= RELEVANCE or sentence >= T.
    kept = {name: sims >= RELEVANCE for name, sims in (("a", answerable), ("m", missing), ("u", unrelated))}
    sentence = {"a": best_sentence([claims[q] for q in present]), "m": best_sentence([claims[q] for q in absent]),
                "u": best_sentence(off_topic)}
    spread = {k: fmt(np.percentile(v, [5, 50, 95])) for k, v in sentence.items()}
    print(f"\n{len(sentences)} sentences; best-sentence cosine, 5th / 50th / 95th percentile: answerable "
          f"{spread['a']}, unanswerable {spread['m']}, off-topic {spread['u']}")
    print(f"chunk >= {RELEVANCE:.2f} or sentence >= T:")
    print(f"{'T':>9}  {'answerable kept':>15}  {'unanswerable rejected':>21}  {'off-topic rejected':>18}")
    for t in (0.35, 0.40, 0.45, 0.50, 0.55):
        found = {k: kept[k] | (sentence[k] >= t) for k in kept}
        mark = "  <- SENTENCE_RELEVANCE (inspect)" if abs(t - SENTENCE_RELEVANCE) < 1e-9 else ""
        print(f"{t:9.2f}  {np.mean(found['a']):15.1%}  {1 - np.mean(found['m']):21.1%}  "
              f"{1 - np.mean(found['u']):18.1%}{mark}")


# --- answers ---------------------------------------------------------------------------------------
def answers(data: Path, n: int = 100) -> None:
    """`ask` on the first n answerable SciFact claims over an index of the 194 abstracts, with
    the answers' repetition penalty and without: repeats, answers cut at the token limit, citing."""
    import tempfile

    import llmlab.apps.ask  # noqa: F401  (the package's `ask` attribute is the function)
    from llmlab.apps.search import Index
    from llmlab.weights.registry import load_decoder

    module = sys.modules["llmlab.apps.ask"]
    claims, _, present, _, docs = scifact(data)
    decoder = load_decoder("smollm2", precision="int4")
    default = module.ANSWER_REPETITION_PENALTY
    counts = {}
    with tempfile.TemporaryDirectory() as folder:
        index = Index(folder, create=True)
        index.add(list(docs.items()))
        for penalty in (default, 1.0):
            module.ANSWER_REPETITION_PENALTY = penalty
            found = repeats = cut = citing = 0
            start = time.perf_counter()
            for q in present[:n]:
                a = module.ask(claims[q], index, k=3, max_new_tokens=160, decoder=decoder)
                if not a.found:
                    continue
                found += 1
                repeats += repeats_a_phrase(a.answer)
                cut += len(decoder.tokenizer.encode(a.answer, special=False)) >= 155  # stopped by the limit
                citing += bool(a.citations)
            counts[penalty] = (found, repeats, cut, citing, time.perf_counter() - start)
    module.ANSWER_REPETITION_PENALTY = default
    print(f"SciFact, first {n} answerable claims asked over their 194 abstracts (`ask`, int4, k 3, <= 160 tokens)")
    print(f"{'repetition penalty':>18} {'answered':>9} {'repeat a 4-word phrase':>23} {'at the limit':>13} "
          f"{'cite a passage':>15}")
    for penalty, (found, repeats, cut, citing, seconds) in counts.items():
        mark = " (default)" if penalty == default else ""
        print(f"{penalty:>18g} {found:>9} {repeats:>23} {cut:>13} {citing:>15}   {seconds:.0f} s{mark}")


# --- checklist -------------------------------------------------------------------------------------
CONTRACT = """SERVICE AGREEMENT

This Service Agreement is made between Northwind Analytics Ltd (the Provider) and Harbour Retail plc
(the Client).

1. Term. This Agreement starts on 1 March 2025 and runs for an initial term of 24 months. It then
renews automatically for successive periods of 12 months unless either party gives written notice
of non-renewal at least 60 days before the end of the current term.

2. Fees. The Client will pay a monthly fee of GBP 2,400. The Provider invoices monthly in arrears,
and each invoice is payable within 30 days of its date. Late payments carry interest of 1.5% per
month on the overdue amount.

3. Termination. Either party may terminate this Agreement if the other party commits a material
breach and fails to remedy it within 30 days of written notice. The Client may not otherwise
terminate the Agreement before the end of the current term.

4. Subcontracting. The Provider may not subcontract any of its obligations without the Client's
prior written consent.

5. Data. The Provider processes personal data only on the Client's documented instructions. All
personal data is stored and processed in the United Kingdom and is never transferred outside it.

6. Confidentiality. Each party keeps the other's confidential information secret. This obligation
survives the end of the Agreement for five years.

7. Liability. The Provider's total liability under this Agreement is limited to the fees paid by the
Client in the 12 months before the claim arose.

8. Insurance. The Provider holds public liability insurance of GBP 5 million for the whole term.

9. Governing law. This Agreement is governed by the laws of England and Wales.
"""
CHECKLIST = [  # (item, what the contract says, words of the sentence that says it): 6 yes, 6 no, 2 not addressed
    ("Is interest charged on late payments?", "yes", "Late payments carry interest"),
    ("Does the agreement renew automatically?", "yes", "renews automatically"),
    ("Is the provider's liability limited?", "yes", "total liability under this Agreement is limited"),
    ("Is the agreement governed by the laws of England and Wales?", "yes", "governed by the laws of England"),
    ("Does the confidentiality obligation continue after the agreement ends?", "yes", "survives the end"),
    ("Must the provider hold insurance?", "yes", "public liability insurance"),
    ("Can the client terminate at any time without giving a reason?", "no", "may not otherwise terminate"),
    ("May the provider subcontract its work without the client's consent?", "no", "may not subcontract"),
    ("May personal data be transferred outside the United Kingdom?", "no", "never transferred outside"),
    ("Is the monthly fee paid in advance?", "no", "invoices monthly in arrears"),
    ("Does the agreement run for an indefinite period?", "no", "initial term of 24 months"),
    ("Is the provider's liability unlimited?", "no", "total liability under this Agreement is limited"),
    ("Does the agreement name a data protection officer?", "not addressed", None),
    ("Does the agreement contain a non-compete clause?", "not addressed", None),
]


def checklist(data: Path) -> None:
    """`inspect --checklist` on a service agreement written for this check, whose answers are known:
    how many verdicts match what the contract says (an "unclear" verdict is not a match)."""
    import tempfile

    import llmlab.apps.inspect  # noqa: F401  (the package's `inspect` attribute is the function)
    from llmlab.weights.registry import load_decoder, load_encoder

    module = sys.modules["llmlab.apps.inspect"]
    decoder, encoder = load_decoder("smollm2", precision="int4"), load_encoder("minilm")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "agreement.txt"
        path.write_text(CONTRACT, encoding="utf-8")
        start = time.perf_counter()
        result = module.inspect(path, summary=False, checklist=[item for item, *_ in CHECKLIST], decoder=decoder,
                                encoder=encoder)
        seconds = time.perf_counter() - start
    right = {"yes": 0, "no": 0, "not addressed": 0}
    quoted = 0  # items the contract addresses whose quote is the sentence that says it
    print(f"checklist on a {result.tokens}-token service agreement ({len(CHECKLIST)} items, int4, {seconds:.0f} s)")
    print(f"{'truth':>13} {'verdict':>9} quote  item / answer")
    for (item, truth, clause), finding in zip(CHECKLIST, result.checklist):
        right[truth] += finding.verdict == truth or truth == "not addressed" and finding.verdict == "not found"
        hit = clause is not None and finding.quote is not None and clause in " ".join(finding.quote.split())
        quoted += hit
        print(f"{truth:>13} {finding.verdict:>9} {'right' if hit else '-':>5}  {item}\n{'':31}"
              f"{' '.join(finding.answer.split())[:100]}")
    totals = {truth: sum(t == truth for _, t, _ in CHECKLIST) for truth in right}
    print("verdicts right: " + ", ".join(f"{truth} {n} of {totals[truth]}" for truth, n in right.items()))
    print(f"quote is the sentence that answers the item: {quoted} of {totals['yes'] + totals['no']}")


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fmt(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


# --- summarize ---------------------------------------------------------------------------------
def repeats_a_phrase(text: str, n: int = 4) -> bool:
    w = words(text)
    grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return len(grams) != len(set(grams))


def summarize(data: Path, n: int = 100) -> None:
    from llmlab.apps.inspect import SUMMARY_REPETITION_PENALTY, inspect, split_sentences
    from llmlab.weights.registry import load_decoder, load_encoder

    rows = [json.loads(line) for line in open(data / "summarization" / "dialogsum.dev.jsonl", encoding="utf-8")][:n]
    decoder, encoder = load_decoder("smollm2", precision="int4"), load_encoder("minilm")
    penalised = f"SmolLM2-135M summary, penalty {SUMMARY_REPETITION_PENALTY:g} (default)"
    names = [penalised, "SmolLM2-135M summary, no penalty", "central sentences, 3 (extractive)", "lead-3"]
    scores, repeats = {name: [] for name in names}, {name: [] for name in names}
    start = time.perf_counter()
    for i, row in enumerate(rows):
        result = inspect(row["dialogue"], summary=True, decoder=decoder, encoder=encoder, sentences=3)
        plain = inspect(row["dialogue"], summary=True, decoder=decoder, encoder=encoder, sentences=3,
                        repetition_penalty=1.0).summary
        lead = " ".join(row["dialogue"][a:b] for a, b in split_sentences(row["dialogue"])[:3])
        for name, text in zip(names, (result.summary, plain, " ".join(result.central), lead)):
            scores[name].append(rouge_l(text, row["summary"]))
            repeats[name].append(repeats_a_phrase(text))
        print(f"  {i + 1}/{len(rows)} {row['fname']}: {result.summary[:100]!r}", file=sys.stderr)
    seconds = time.perf_counter() - start
    print(f"DialogSum dev, first {len(rows)} dialogues, ROUGE-L F1 vs the reference summary "
          f"({seconds:.0f} s for both summaries of each)")
    print(f"{'method':<48} {'ROUGE-L':>8} {'repeats a 4-word phrase':>24}")
    for name in names:
        print(f"{name:<48} {np.mean(scores[name]):8.3f} {np.mean(repeats[name]):24.0%}")


def speeches(data: Path) -> None:
    from llmlab.apps.inspect import SUMMARY_REPETITION_PENALTY, inspect
    from llmlab.errors import LlmlabError
    from llmlab.fileio import read_text
    from llmlab.weights.registry import load_decoder, load_encoder

    files = sorted((data / "corpus_en" / "state_union").glob("*.txt"))[::8]
    decoder, encoder = load_decoder("smollm2", precision="int4"), load_encoder("minilm")
    found = {SUMMARY_REPETITION_PENALTY: [], 1.0: []}
    for f in files:
        try:
            text = read_text(f)
        except LlmlabError as e:  # a few speeches of the corpus are not UTF-8
            print(f"  skipped {f.name}: {e}", file=sys.stderr)
            continue
        for penalty, flags in found.items():
            r = inspect(text, summary=True, decoder=decoder, encoder=encoder, sentences=1, repetition_penalty=penalty)
            flags.append(repeats_a_phrase(r.summary))
            print(f"  {f.name} ({r.tokens} tokens, parts {r.parts}), penalty {penalty:g}: {r.summary[:160]!r}",
                  file=sys.stderr)
    print(f"State of the Union addresses, every 8th ({len(found[1.0])}): final summaries that repeat a 4-word phrase")
    for penalty, flags in found.items():
        print(f"  repetition penalty {penalty:g}: {sum(flags)} of {len(flags)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--only", choices=["calibrate", "answers", "checklist", "summarize", "speeches"])
    p.add_argument("-n", type=int, default=100, help="dialogues to summarise (default 100)")
    args = p.parse_args()
    if args.only in (None, "calibrate"):
        calibrate(args.data)
    if args.only in (None, "answers"):
        answers(args.data)
    if args.only in (None, "checklist"):
        checklist(args.data)
    if args.only in (None, "summarize"):
        summarize(args.data, args.n)
    if args.only == "speeches":
        speeches(args.data)


if __name__ == "__main__":
    main()
