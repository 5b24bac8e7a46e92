"""word2vec: kernels against the numpy references, planted structure learned, files and evaluation
against gensim, streaming, and one-line errors for bad input."""

import json
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from llmlab.cli import main
from llmlab.embed import KeyedVectors, Word2Vec, Word2VecConfig, evaluate_analogies, evaluate_pairs, train_word2vec
from llmlab.embed import word2vec_kernels as K
from llmlab.embed.word2vec import MAX_SENTENCE, iter_chunks, iter_sentences, spearman, tokenize
from llmlab.errors import LlmlabError

LETTERS = "abcdefghijklmnopqrstuvwxyz"
FILLERS = ["the", "of", "and", "to", "in", "is", "was", "that", "for", "with", "as", "on", "by", "at", "from"]


def topic_word(k: int, j: int) -> str:
    return f"w{LETTERS[k]}{LETTERS[j]}z"


def synthetic_corpus(path, sentences=3000, topics=12, per_topic=8, seed=0):
    """Each sentence talks about one topic: its words 60% of the time, Zipf-distributed fillers otherwise."""
    rng = np.random.default_rng(seed)
    zipf = 1 / np.arange(1, len(FILLERS) + 1)
    lines = []
    for _ in range(sentences):
        k = rng.integers(topics)
        words = [topic_word(k, rng.integers(per_topic)) if rng.random() < 0.6 else FILLERS[rng.choice(
            len(FILLERS), p=zipf / zipf.sum())] for _ in range(10)]
        lines.append(" ".join(words).capitalize() + ".\n\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synthetic_corpus(tmp_path_factory.mktemp("w2v") / "topics.txt")


@pytest.fixture(scope="module")
def model(corpus):
    return train_word2vec([corpus], Word2VecConfig(dim=24, window=3, epochs=5, seed=3), progress=False)


# --- kernels equal the references -------------------------------------------------------------
def tiny_matrices(seed=0, vocab=9, dim=8):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((vocab, dim)).astype(np.float32) * 0.3,
            rng.standard_normal((vocab, dim)).astype(np.float32) * 0.3)


def test_skipgram_pair_kernel_equals_reference():
    syn0, syn1 = tiny_matrices()
    ref0, ref1 = syn0.copy(), syn1.copy()
    negatives = np.array([4, 2, 7, 2], dtype=np.int64)  # 2 is the centre word: skipped
    K.skipgram_pair(syn0, syn1, 2, 5, negatives, 0.3, np.empty(8, dtype=np.float32))
    K.skipgram_pair_reference(ref0, ref1, 2, 5, negatives, 0.3)
    np.testing.assert_allclose(syn0, ref0, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(syn1, ref1, rtol=1e-6, atol=1e-7)
    assert not np.array_equal(syn0[5], tiny_matrices()[0][5])


@pytest.mark.parametrize("sg", [True, False], ids=["skip-gram", "cbow"])
def test_chunk_kernel_equals_reference(sg):
    syn0, syn1 = tiny_matrices(1)
    ref0, ref1 = syn0.copy(), syn1.copy()
    counts = np.array([50, 30, 20, 10, 8, 5, 3, 2, 1])
    cum, guide = K.noise_tables(counts)
    ids = np.array([0, 3, 1, 4, 2, 8, 5, 6, 1, 0, 7], dtype=np.int32)
    starts = np.array([0, 4, 4, 5, 11], dtype=np.int64)  # an empty and a one-word sentence too
    windows = np.array([2, 1, 3, 2, 1, 2, 3, 1, 2, 2, 1], dtype=np.int32)
    kernel = K.train_chunk_sg if sg else K.train_chunk_cbow
    state = kernel(syn0, syn1, ids, starts, windows, cum, guide, 3, 0.5, 0.1, np.uint64(12345))
    ref_state = K.train_chunk_reference(ref0, ref1, ids, starts, windows, cum, 3, 0.5, 0.1, 12345, sg)
    assert int(state) == ref_state
    np.testing.assert_allclose(syn0, ref0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(syn1, ref1, rtol=1e-5, atol=1e-6)


def test_noise_draws_follow_the_table():
    counts = np.array([1000, 300, 50, 7, 5, 5, 1])
    cum, guide = K.noise_tables(counts)
    values = np.random.default_rng(0).integers(0, K.NOISE_DOMAIN, 20000)
    drawn = np.searchsorted(cum, values, side="right")
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(np.bincount(drawn, minlength=len(counts)) / len(values), expected, atol=0.01)
    for b in range(0, len(guide) - 1, 997):  # the guide brackets every bucket's answers
        lo_val, hi_val = b << K.GUIDE_SHIFT, ((b + 1) << K.GUIDE_SHIFT) - 1
        assert guide[b] == np.searchsorted(cum, lo_val, side="right")
        assert guide[b + 1] >= np.searchsorted(cum, hi_val, side="right")


# --- training ------------------------------------------------------------------------------------
def test_planted_topics_become_neighbours(model):
    kv = model.wv
    hits = total = 0
    for k in range(12):
        for j in range(8):
            near = [w for w, _ in kv.most_similar(topic_word(k, j), topn=5)]
            hits += sum(w.startswith(f"w{LETTERS[k]}") for w in near)
            total += 5
    assert hits / total > 0.9
    assert model.stats["effective_words"] < model.stats["raw_words"]  # sub-sampling dropped fillers
    assert kv.words[0] == "the" and len(kv) == 12 * 8 + len(FILLERS)


def test_seeded_single_thread_training_is_deterministic(corpus):
    cfg = dict(dim=16, epochs=1, seed=11, threads=1)
    a = train_word2vec([corpus], Word2VecConfig(**cfg), progress=False).wv.vectors
    b = train_word2vec([corpus], Word2VecConfig(**cfg), progress=False).wv.vectors
    c = train_word2vec([corpus], Word2VecConfig(**cfg | {"seed": 12}), progress=False).wv.vectors
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    one = train_word2vec(str(corpus), Word2VecConfig(**cfg), progress=False)  # one file, not its name's letters
    assert np.array_equal(one.wv.vectors, a) and repr(one.wv) == f"<KeyedVectors: {len(one.wv):,} words x 16 dims>"


def test_later_epochs_read_the_kept_ids_or_the_files_again(corpus, monkeypatch):
    """Epochs after the first read the ids kept from it, not the files, and train exactly as a
    corpus too large to keep (read from the files each epoch) does."""
    import llmlab.embed.word2vec as w2v

    cfg = Word2VecConfig(dim=16, epochs=3, seed=5, threads=1, chunk_words=500)
    opened = []
    lines = w2v._text_lines
    monkeypatch.setattr(w2v, "_text_lines", lambda path: opened.append(path) or lines(path))
    kept = train_word2vec([corpus], cfg, progress=False).wv.vectors
    assert len(opened) == 2  # the vocabulary pass and the first epoch
    monkeypatch.setattr(w2v, "CACHE_WORDS", 1000)  # the corpus has 30,000 words
    opened.clear()
    streamed = train_word2vec([corpus], cfg, progress=False).wv.vectors
    assert len(opened) == 4 and np.array_equal(kept, streamed)


def test_cbow_and_two_threads_learn_too(corpus):
    m = train_word2vec([corpus], Word2VecConfig(sg=False, dim=24, window=3, epochs=5, threads=2), progress=False)
    assert m.config.alpha == 0.05
    near = [w for w, _ in m.wv.most_similar(topic_word(0, 0), topn=5)]
    assert sum(w.startswith("wa") for w in near) >= 4


@pytest.mark.parametrize("decay", ["sentences", "words"])
def test_alpha_decays_linearly_in_sentences_or_words(decay, tmp_path, monkeypatch):
    """Long paragraphs first, short ones last (as corpus_en): each chunk's rate falls by its share
    of the corpus's sentences (gensim) or words (word2vec.c), down to min_alpha at the end."""
    long_para = " ".join(f"w{LETTERS[i % 7]}" for i in range(120)) + "\n\n"
    short_para = "wb wc wd we wf wg\n\n"
    path = tmp_path / "uneven.txt"
    path.write_text(long_para * 10 + short_para * 200, encoding="utf-8")
    calls, kernel = [], K.train_chunk_sg

    def recording_kernel(syn0, syn1neg, ids, starts, windows, cum, guide, negative, a0, a1, rng):
        calls.append((len(starts) - 1, len(ids), a0, a1))
        return kernel(syn0, syn1neg, ids, starts, windows, cum, guide, negative, a0, a1, rng)

    monkeypatch.setattr(K, "train_chunk_sg", recording_kernel)
    cfg = Word2VecConfig(dim=4, min_count=1, sample=0, epochs=2, chunk_words=300, alpha_decay=decay)
    model = train_word2vec([path], cfg, progress=False)
    assert model.sentences == 210 and model.stats["corpus_sentences"] == 210
    sentences, words = np.array([c[:2] for c in calls]).T  # per chunk (sample=0: every word kept)
    a0, a1 = np.array([c[2:] for c in calls]).T
    done = np.cumsum(sentences if decay == "sentences" else words)
    per_epoch = 210 if decay == "sentences" else 10 * 120 + 200 * 6
    np.testing.assert_allclose(a1, cfg.alpha - (cfg.alpha - cfg.min_alpha) * done / (2 * per_epoch), rtol=1e-12)
    np.testing.assert_allclose(a0, np.r_[cfg.alpha, a1[:-1]], rtol=1e-12)
    assert a1[-1] == pytest.approx(cfg.min_alpha)
    half = np.searchsorted(np.cumsum(words), words.sum() / 4)  # the chunk ending half of epoch 1's words
    progress = (cfg.alpha - a1[half]) / (cfg.alpha - cfg.min_alpha)
    assert progress < 0.1 if decay == "sentences" else progress > 0.25  # 10 of 210 sentences vs 1/4 of the words


# --- corpus reading --------------------------------------------------------------------------------
def test_sentences_from_text_and_tagged_zip(tmp_path):
    txt = tmp_path / "a.txt"
    txt.write_bytes("The cat's hat,\nisn't 42 red.\n\nNext para\xe7graph\n".encode("latin-1"))
    assert list(iter_sentences([txt])) == [["the", "cat's", "hat", "isn't", "red"], ["next", "para", "graph"]]
    z = tmp_path / "brown.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("brown/ca01", "\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ``/`` 1/2/cd Atlanta's/np$ ./.\n"
                                 "\tIt/pps won't/md* ./.\n")
        f.writestr("brown/README", "not a text\n")
    assert list(iter_sentences([z])) == [["the", "fulton", "jury", "said", "atlanta's"], ["it", "won't"]]
    long = tmp_path / "long.txt"
    long.write_text("word " * (2 * MAX_SENTENCE + 5))
    assert [len(s) for s in iter_sentences([long])] == [MAX_SENTENCE, MAX_SENTENCE, 5]
    assert tokenize("Ünïcode straße—día_x 3rd") == ["ünïcode", "straße", "día", "x", "rd"]


def test_reader_streams_in_constant_memory(tmp_path):
    """Peak allocations while reading a corpus 8 times larger stay the same: chunks are produced lazily."""
    line = "the quick brown fox jumps over the lazy dog and runs far away\n"

    def peak(copies):
        path = tmp_path / f"c{copies}.txt"
        path.write_text(line * 4000 * copies)
        tracemalloc.start()
        n = sum(len(words) for words, _ in iter_chunks(iter_sentences([path]), 2000))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert n == 13 * 4000 * copies
        return top

    small, large = peak(1), peak(8)
    assert large < 1.5 * small and large < 2_000_000


# --- files and queries against gensim ---------------------------------------------------------------
def test_save_load_round_trip_and_gensim_reads_our_files(model, tmp_path):
    from gensim.models import KeyedVectors as GensimKV

    kv = model.wv
    for name, binary in [("v.txt", False), ("v.bin", True)]:
        path = kv.save(tmp_path / name)
        ours = KeyedVectors.load(path)
        assert ours.words == kv.words and np.array_equal(ours.vectors, kv.vectors)
        theirs = GensimKV.load_word2vec_format(str(path), binary=binary)
        assert list(theirs.index_to_key) == kv.words
        np.testing.assert_array_equal(theirs.vectors, kv.vectors)
        for w in (topic_word(3, 1), "the", topic_word(11, 7)):
            assert [x for x, _ in theirs.most_similar(w, topn=10)] == [x for x, _ in ours.most_similar(w, topn=10)]


def test_queries_equal_gensim(model):
    from gensim.models import KeyedVectors as GensimKV

    kv = model.wv
    g = GensimKV(kv.dim)
    g.add_vectors(kv.words, kv.vectors)
    a, b, c = topic_word(0, 1), topic_word(1, 2), topic_word(2, 3)
    for ours, theirs in [(kv.most_similar([a, b], [c], topn=7), g.most_similar([a, b], [c], topn=7)),
                         (kv.analogy(a, b, c, topn=3), g.most_similar([b, c], [a], topn=3)),
                         (kv.analogy(a, b, c, topn=3, method="mul", eps=1e-6),
                          g.most_similar_cosmul([b, c], [a], topn=3))]:
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-5)
    assert kv.similarity(a, b) == pytest.approx(float(g.similarity(a, b)), rel=1e-5)
    odd = [topic_word(4, 0), topic_word(4, 1), topic_word(4, 2), topic_word(9, 0)]
    assert kv.doesnt_match(odd) == g.doesnt_match(odd) == topic_word(9, 0)
    assert a in kv and "zzz" not in kv and np.array_equal(kv[a], kv.vectors[kv.index[a]])
    for query in (lambda: kv["zzz"], lambda: kv.most_similar("zzz"), lambda: kv.analogy(a, "zzz", c),
                  lambda: kv.similarity("zzz", a), lambda: kv.doesnt_match([a, "zzz"])):
        with pytest.raises(LlmlabError, match="'zzz' is not in the vocabulary"):
            query()


def write_eval_files(folder):
    """Tiny questions-words / WordSim / SimLex files in the real formats, with unknown words,
    capitals and malformed lines."""
    folder.mkdir(exist_ok=True)
    quads = [" ".join(topic_word(k, j) for k, j in q) for q in
             [((0, 0), (1, 0), (0, 1), (1, 1)), ((2, 2), (3, 2), (2, 3), (3, 3)), ((4, 0), (4, 1), (5, 0), (5, 1)),
              ((6, 6), (7, 6), (6, 5), (7, 5)), ((8, 1), (9, 1), (8, 2), (9, 2)), ((10, 3), (11, 3), (10, 4), (11, 4))]]
    lines = [": first-section", quads[0], quads[1].upper(), "The Of And To", "wzzz waaz wbaz wcaz", "only three words",
             ": second-section", quads[2], quads[3], quads[4], quads[5], "the and of in", ": empty-section"]
    (folder / "questions-words.txt").write_text("\n".join(lines) + "\n")
    pairs = ["# a comment", "# Word 1\tWord 2\tHuman (mean)"]
    rng = np.random.default_rng(5)
    for i in range(30):
        a, b = topic_word(i % 12, i % 8), topic_word((i * 5) % 12, (i + 3) % 8)
        pairs.append(f"{a.upper() if i % 4 == 0 else a}\t{b}\t{rng.uniform(0, 10):.2f}")
    pairs += ["unknownword\tthe\t3.1", "bad line without tabs", "the\tof\tnot-a-number", "the\tof\t5"]
    for name in ("wordsim353.tsv", "simlex999.txt"):
        (folder / name).write_text("\n".join(pairs) + "\n")
    return folder


def test_evaluation_equals_gensim(model, tmp_path):
    from gensim.models import KeyedVectors as GensimKV

    data = write_eval_files(tmp_path / "eval")
    path = model.wv.save(tmp_path / "v.bin")
    g = GensimKV.load_word2vec_format(str(path), binary=True)
    ours = KeyedVectors.load(path)
    for restrict in (len(ours), 80):  # 80: some topic words fall outside the searched words
        counted = {len(ours): (8, 1), 80: (3, 6)}[restrict]  # (questions counted, skipped: unknown words)
        r = evaluate_analogies(ours, data / "questions-words.txt", restrict_vocab=restrict)
        score, sections = g.evaluate_word_analogies(str(data / "questions-words.txt"), restrict_vocab=restrict)
        assert r["accuracy"] == pytest.approx(score)
        assert [(s["section"], s["correct"], s["total"]) for s in r["sections"]] == \
               [(s["section"], len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in sections[:-1]]
        p = evaluate_pairs(ours, data / "wordsim353.tsv", restrict_vocab=restrict)
        pearson, spear, oov = g.evaluate_word_pairs(str(data / "wordsim353.tsv"), restrict_vocab=restrict)
        assert p["spearman"] == pytest.approx(spear[0], abs=1e-9)
        assert p["pearson"] == pytest.approx(pearson[0], abs=1e-6)
        assert 100 * p["oov_ratio"] == pytest.approx(oov)
        assert (r["total"], r["skipped_oov"]) == counted


def test_spearman_with_ties_equals_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 5, 200).astype(float), rng.normal(size=200)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y)[0], abs=1e-12)


def test_real_evaluation_files_equal_gensim(shared_data, tmp_path):
    """The real questions-words / WordSim-353 / SimLex-999 files, on random vectors over their words."""
    from gensim.models import KeyedVectors as GensimKV

    folder = shared_data / "word_eval"
    words = sorted({w.lower() for name in ("questions-words.txt", "wordsim353.tsv", "simlex999.txt")
                    for line in (folder / name).read_text().splitlines() if not line.startswith((":", "#"))
                    for w in line.split()[:4] if w.isalpha()})
    words = [words[i] for i in np.random.default_rng(0).permutation(len(words))]
    vectors = np.random.default_rng(1).normal(size=(len(words), 16)).astype(np.float32)
    ours = KeyedVectors(words, vectors)
    g = GensimKV(16)
    g.add_vectors(words, vectors)
    restrict = len(words) - 200
    r = evaluate_analogies(ours, folder / "questions-words.txt", restrict_vocab=restrict)
    score, sections = g.evaluate_word_analogies(str(folder / "questions-words.txt"), restrict_vocab=restrict)
    assert r["correct"] == len(sections[-1]["correct"]) and r["accuracy"] == pytest.approx(score)
    assert r["total"] + r["skipped_oov"] == 19544 and len(r["sections"]) == 14
    for name in ("wordsim353.tsv", "simlex999.txt"):
        p = evaluate_pairs(ours, folder / name)
        _, spear, oov = g.evaluate_word_pairs(str(folder / name))
        assert p["spearman"] == pytest.approx(spear[0], abs=1e-9) and 100 * p["oov_ratio"] == pytest.approx(oov)


# --- the command line, bad input ------------------------------------------------------------------
def run_cli(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_similar_analogy_eval_report(corpus, tmp_path, capsys):
    out = tmp_path / "model"
    code, text, _ = run_cli(capsys, "word2vec", "train", corpus, "--out", out, "--dim", 24, "--window", 3,
                            "--epochs", 3, "--quiet")
    assert code == 0 and "trained skip-gram" in text and (out / "vectors.bin").is_file()
    code, text, _ = run_cli(capsys, "word2vec", "similar", topic_word(2, 2).upper(), "-n", 3, "--vectors", out)
    assert code == 0 and len(text.splitlines()) == 3 and text.count("wc") >= 2
    code, text, _ = run_cli(capsys, "word2vec", "analogy", topic_word(0, 0), topic_word(1, 0), topic_word(0, 1),
                            "--vectors", out, "--format", "json")
    assert code == 0 and text.startswith("[{")
    data = write_eval_files(tmp_path / "eval")
    code, text, _ = run_cli(capsys, "word2vec", "eval", "--vectors", out, "--data", data, "--report", tmp_path / "r")
    assert code == 0 and "wordsim353: Spearman" in text
    assert "n/a of 0" in text and "0.0% of 0" not in text  # a section with no question has no accuracy
    report = (tmp_path / "r" / "report.md").read_text()
    folder = tmp_path / "corpus-folder"  # a folder stands for the .txt files under it
    folder.mkdir()
    (folder / "part.txt").write_bytes(Path(corpus).read_bytes())
    code, text, _ = run_cli(capsys, "word2vec", "train", folder, "--out", tmp_path / "m2", "--dim", 8, "--epochs", 1,
                            "--quiet", "--format", "json")
    assert code == 0 and json.loads(text)["corpus_words"] > 1000
    assert "**baby**: no vector" in report and "*bank* has no vector" in report


@pytest.mark.parametrize("case", ["empty", "below min_count", "missing file", "folder", "unknown word",
                                  "corrupt vectors", "truncated vectors", "text rows"])
def test_bad_input_is_one_error_line(case, model, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n 123 !!\n")
    few = tmp_path / "few.txt"
    few.write_text("one two three two one\n")
    vec_dir = tmp_path / "vec"
    model.save(vec_dir)
    good = (vec_dir / "vectors.bin").read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes({"corrupt vectors": b"\x89PNG\r\n\x1a\n garbage", "truncated vectors": good[: len(good) // 2],
                     }.get(case, b""))
    rows = tmp_path / "rows.txt"
    rows.write_text("3 2\nthe 0.1 0.2\nof 0.3\n")
    argv = {"empty": ["train", empty, "--out", tmp_path / "o"],
            "below min_count": ["train", few, "--out", tmp_path / "o"],
            "missing file": ["train", tmp_path / "nope.txt", "--out", tmp_path / "o"],
            "folder": ["train", vec_dir, "--out", tmp_path / "o"],
            "unknown word": ["similar", "qqqq", "--vectors", vec_dir],
            "corrupt vectors": ["similar", "the", "--vectors", bad],
            "truncated vectors": ["analogy", "the", "of", "and", "--vectors", bad],
            "text rows": ["similar", "the", "--vectors", rows]}[case]
    expected = {"empty": "corpus is empty", "below min_count": "no word occurs 5+ times",
                "missing file": "no such file", "folder": "no .txt or .zip files in this folder",
                "unknown word": "'qqqq' is not in the",
                "corrupt vectors": "not a word2vec file", "truncated vectors": "truncated or corrupt",
                "text rows": "the header announces 3 words"}[case]
    code, out, err = run_cli(capsys, "word2vec", *argv)
    assert code == 2 and out == ""
    assert err.startswith("llmlab: error: ") and len(err.strip().splitlines()) == 1 and expected in err, err


def test_config_rejects_nonsense():
    with pytest.raises(LlmlabError, match="window must be at least 1"):
        Word2VecConfig(window=0)
    with pytest.raises(LlmlabError, match="alpha_decay must be 'sentences' or 'words'"):
        Word2VecConfig(alpha_decay="epochs")
    with pytest.raises(LlmlabError, match="not trained"):
        Word2Vec().save("/tmp/never")
    for bad in ({"dim": 2.5}, {"alpha": -1.0}, {"seed": -1}, {"ns_exponent": float("nan")}, {"sample": float("nan")},
                {"sg": "no"}, {"epochs": True}, {"min_alpha": 0.5}, {"dim": "100"}):
        with pytest.raises(LlmlabError, match=next(iter(bad)) if "min_alpha" not in bad else "min_alpha <= alpha"):
            Word2VecConfig(**bad)


def test_queries_refuse_what_would_be_misread(model):
    kv = model.wv
    for kwargs in ({"topn": -1}, {"topn": 2.5}, {"restrict_vocab": -1}):
        with pytest.raises(LlmlabError, match=next(iter(kwargs))):
            kv.most_similar(kv.words[0], **kwargs)
    with pytest.raises(LlmlabError, match="a word is a str, not NoneType"):
        kv.most_similar(None)
    with pytest.raises(LlmlabError, match=r"1 word\(s\) listed twice, e.g. 'a'"):
        KeyedVectors(["a", "a", "b"], np.eye(3))
    with pytest.raises(LlmlabError, match=r"vectors must be \(words, dims\)"):
        KeyedVectors(["a", "b"], np.zeros(2))


def test_no_answer_is_said(tmp_path, capsys):
    """One word in the vocabulary: similar has nothing to rank, and says so (exit 0, stdout empty)."""
    KeyedVectors(["word"], np.ones((1, 4), dtype=np.float32)).save(tmp_path / "one.bin")
    code, text, err = run_cli(capsys, "word2vec", "similar", "word", "--vectors", tmp_path / "one.bin")
    assert (code, text) == (0, "") and "no answer: the vocabulary holds no other words" in err
