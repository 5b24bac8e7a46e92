"""word2vec: one static vector per word, learned by predicting neighbours (Mikolov et al. 2013a/b).

Implements skip-gram and CBOW with negative sampling, as in word2vec.c and gensim:

- noise words drawn from the unigram distribution raised to 0.75;
- sub-sampling of frequent words: a word of count c is kept with probability
  ``(sqrt(c / (sample * N)) + 1) * (sample * N) / c`` (capped at 1; N = words kept by min_count);
- a dynamic window: for every position a reduced window b is drawn uniformly from 1..window;
- a learning rate falling linearly from alpha (0.025 skip-gram, 0.05 CBOW) to min_alpha, with
  progress counted in sentences handed out, as gensim counts it when it knows the corpus's sentence
  count (``alpha_decay="words"``: in words read, as word2vec.c). The two differ when sentence
  lengths vary along the corpus: on corpus_en (long Gutenberg paragraphs first, short Brown lines
  last) half of the words are read after 23% of the sentences, so counting sentences keeps the
  rate higher for longer: +1.2 points of WordSim-353 there, which is gensim's score (README);
- words rarer than ``min_count`` dropped; a seed for everything random.

Training streams the files: one vocabulary pass (word and sentence counts), then a pass that
cuts the sentences into chunks of about ``chunk_words`` words and maps them to ids; per epoch
each chunk is sub-sampled and its windows drawn with numpy, and it is handed to a worker
thread. The workers run the numba kernels of `word2vec_kernels` without the GIL and update
the shared matrices without locks (Hogwild). The first epoch keeps the chunks' ids (about 4 bytes
a word) for the later ones, which then read no file and tokenize nothing. A corpus of more than
``CACHE_WORDS`` words is read again each epoch instead, so memory holds the vocabulary, the two
matrices, a few chunks and at most ``CACHE_WORDS`` ids (400 MB), whatever the corpus size.

Tokens (`tokenize`): lower-cased words, ``[^\\W\\d_]+(?:'[^\\W\\d_]+)*`` (letters, with inner
apostrophes: "don't", "atlanta's"); digits and punctuation are dropped. Sentences
(`iter_sentences`): in a .txt file, a paragraph (lines up to a blank line); in a .zip of
POS-tagged texts (NLTK's Brown corpus, ``word/tag``), one line with the tags removed. Either is
cut every ``MAX_SENTENCE`` tokens. Bytes that are not UTF-8 become U+FFFD (and so split words).

`KeyedVectors` answers queries (most_similar, similarity, analogies by 3CosAdd and 3CosMul of
Levy & Goldberg 2014, doesnt_match) and reads and writes the word2vec text and binary formats.
`evaluate_analogies` / `evaluate_pairs` follow gensim's rules for questions-words.txt,
WordSim-353 and SimLex-999, so their figures are comparable.

Tests: tests/embed/test_word2vec.py (kernels equal the numpy references; gensim reads our files
and its evaluators give our numbers; planted neighbours are learned). Benchmark against gensim:
bench/word2vec.py.
"""

import io
import json
import math
import numbers
import queue
import re
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import repeat
from pathlib import Path

import numpy as np

from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_bytes, atomic_write_text, path_list, read_text

TOKEN_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
TAG_RE = re.compile(r"/[^\s/]+(?=\s|$)")  # the "/tag" ending each token of a POS-tagged line
MAX_SENTENCE = 1000
CACHE_WORDS = 100_000_000  # a corpus up to this many words has its ids kept after the first epoch (400 MB)
ZIP_SKIP = {"README", "CONTENTS", "cats.txt"}  # the Brown zip's documentation members
VECTORS_FILE, INFO_FILE = "vectors.bin", "word2vec.json"


# --- corpus: tokens, sentences, chunks ------------------------------------------------------
def tokenize(text: str) -> list[str]:
    return TOKEN_RE.findall(text.lower())


def _text_lines(path: Path) -> Iterator[str]:
    """Lines of a text file or of a zip's members, decoded with errors="replace"."""
    if not path.exists():
        raise LlmlabError(f"{path}: no such file")
    if path.is_dir():
        raise LlmlabError(f"{path}: is a folder, expected a text file (.txt) or a zip of tagged texts")
    if path.suffix == ".zip":
        try:
            z = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise LlmlabError(f"{path}: not a readable zip file") from None
        with z:
            for member in z.namelist():
                if member.endswith("/") or member.rsplit("/", 1)[-1] in ZIP_SKIP:
                    continue
                with z.open(member) as f:
                    for line in io.TextIOWrapper(f, encoding="utf-8", errors="replace"):
                        yield TAG_RE.sub("", line)
                yield ""  # a member ends a sentence
        return
    with open(path, "rb") as f:
        if b"\x00" in f.read(8192):
            raise LlmlabError(f"{path}: looks like a binary file (NUL bytes), expected text")
        f.seek(0)
        yield from io.TextIOWrapper(f, encoding="utf-8", errors="replace")


def corpus_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files given, with each folder replaced by the .txt and .zip files under it (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in (".txt", ".zip"))
            if not found:
                raise LlmlabError(f"{p}: no .txt or .zip files in this folder")
            files += found
        else:
            files.append(p)
    return files


def iter_sentences(files: Iterable[str | Path]) -> Iterator[list[str]]:
    """Token lists, lazily: paragraphs of .txt files, lines of tagged .zip members (one file or several)."""
    for file in path_list(files):
        path = Path(file)
        per_line = path.suffix == ".zip"
        buf: list[str] = []
        for line in _text_lines(path):
            words = tokenize(line)
            if words:
                buf.extend(words)
                while len(buf) >= MAX_SENTENCE:
                    yield buf[:MAX_SENTENCE]
                    buf = buf[MAX_SENTENCE:]
            if buf and (per_line or not line.strip()):
                yield buf
                buf = []
        if buf:
            yield buf


def iter_chunks(sentences: Iterable[list[str]], chunk_words: int) -> Iterator[tuple[list[str], list[int]]]:
    """(words of several sentences, their lengths), about ``chunk_words`` words each, lazily."""
    words: list[str] = []
    lengths: list[int] = []
    for s in sentences:
        words.extend(s)
        lengths.append(len(s))
        if len(words) >= chunk_words:
            yield words, lengths
            words, lengths = [], []
    if words:
        yield words, lengths


# --- vectors and queries -------------------------------------------------------------------------
class KeyedVectors:
    """Words and their vectors (V, D) float32, most frequent first; queries by cosine."""

    def __init__(self, words: list[str], vectors: np.ndarray):
        if len(words) != len(vectors):
            raise LlmlabError(f"{len(words)} words but {len(vectors)} vectors")
        self.words = list(words)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2:
            raise LlmlabError(f"vectors must be (words, dims), not of shape {self.vectors.shape}")
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) < len(self.words):  # a query would find the word itself under its other id
            twice = sorted(w for w, n in Counter(self.words).items() if n > 1)
            raise LlmlabError(f"{len(twice)} word(s) listed twice, e.g. {twice[0]!r}: each word has one vector")
        self._unit: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"<KeyedVectors: {len(self.words):,} words x {self.vectors.shape[1]} dims>"

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self.id(word)]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def unit(self) -> np.ndarray:
        """(V, D) rows scaled to length 1 (zero rows stay zero)."""
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._unit = self.vectors / np.where(norms > 0, norms, 1)
        return self._unit

    def id(self, word: str) -> int:
        if not isinstance(word, str):
            raise LlmlabError(f"a word is a str, not {type(word).__name__}")
        i = self.index.get(word)
        if i is None:
            raise LlmlabError(f"{word!r} is not in the vocabulary ({len(self)} words)")
        return i

    def similarity(self, a: str, b: str) -> float:
        return float(self.unit[self.id(a)] @ self.unit[self.id(b)])

    def _ranked(self, scores: np.ndarray, exclude: list[int], topn: int) -> list[tuple[str, float]]:
        _whole(topn, "topn", 0)  # a negative one would slice from the end: every word but the last few
        scores = scores.copy()
        scores[exclude] = -np.inf
        top = np.argsort(-scores, kind="stable")[:topn]
        return [(self.words[i], float(scores[i])) for i in top if np.isfinite(scores[i])]

    def most_similar(self, positive: str | list[str] = (), negative: str | list[str] = (), topn: int = 10,
                     restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """Nearest words to the mean of the positive words' unit vectors minus the negative ones'
        (gensim's rule); the query words themselves are left out."""
        positive = [positive] if isinstance(positive, str) or positive is None else list(positive)
        negative = [negative] if isinstance(negative, str) else list(negative)
        if not positive and not negative:
            raise LlmlabError("most_similar needs at least one word")
        if restrict_vocab is not None:
            _whole(restrict_vocab, "restrict_vocab", 1)
        pos, neg = [self.id(w) for w in positive], [self.id(w) for w in negative]
        query = self.unit[pos].sum(axis=0) - self.unit[neg].sum(axis=0)
        query /= max(np.linalg.norm(query), 1e-12)
        scores = self.unit[:restrict_vocab] @ query
        return self._ranked(scores, [i for i in pos + neg if i < len(scores)], topn)

    def analogy(self, a: str, b: str, c: str, topn: int = 1, method: str = "add", eps: float = 1e-3,
                restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """a is to b as c is to ?  3CosAdd: argmax cos(x,b) - cos(x,a) + cos(x,c);
        3CosMul (Levy & Goldberg 2014): argmax cos'(x,b) cos'(x,c) / (cos'(x,a) + eps), cos' = (1+cos)/2."""
        ids = [self.id(w) for w in (a, b, c)]
        if restrict_vocab is not None:
            _whole(restrict_vocab, "restrict_vocab", 1)
        unit = self.unit[:restrict_vocab]
        if method == "add":
            return self.most_similar([b, c], [a], topn, restrict_vocab)
        if method != "mul":
            raise LlmlabError(f"analogy method must be 'add' or 'mul', not {method!r}")
        cos_a, cos_b, cos_c = ((1 + unit @ self.unit[i]) / 2 for i in ids)
        return self._ranked(cos_b * cos_c / (cos_a + eps), [i for i in ids if i < len(unit)], topn)

    def doesnt_match(self, words: list[str]) -> str:
        """The word farthest from the mean of the words' unit vectors."""
        if len(words) < 2:
            raise LlmlabError("doesnt_match needs at least two words")
        vecs = self.unit[[self.id(w) for w in words]]
        mean = vecs.mean(axis=0)
        return words[int(np.argmin(vecs @ (mean / max(np.linalg.norm(mean), 1e-12))))]

    # --- word2vec text and binary formats -------------------------------------------------------
    def save(self, path: str | Path, binary: bool | None = None) -> Path:
        """``V D`` header, then one word and its D floats per row (binary: raw little-endian float32)."""
        path = Path(path)
        binary = path.suffix == ".bin" if binary is None else binary
        header = f"{len(self)} {self.dim}\n".encode()
        if binary:
            rows = self.vectors.astype("<f4")
            body = b"".join(w.encode() + b" " + rows[i].tobytes() + b"\n" for i, w in enumerate(self.words))
            return atomic_write_bytes(path, header + body)
        fmt = " ".join(["%.9g"] * self.dim)  # 9 significant digits: float32 round-trips exactly
        lines = [f"{w} {fmt % tuple(row)}\n" for w, row in zip(self.words, self.vectors.tolist())]
        return atomic_write_text(path, header.decode() + "".join(lines))

    @classmethod
    def load(cls, path: str | Path, binary: bool | None = None) -> "KeyedVectors":
        path = Path(path)
        if path.is_dir():
            path = path / VECTORS_FILE
        binary = path.suffix == ".bin" if binary is None else binary
        if not path.exists():
            raise LlmlabError(f"{path}: no such file")
        data = path.read_bytes()
        end = data.find(b"\n")
        try:
            n, dim = map(int, data[:end].split())
            if n < 1 or dim < 1:
                raise ValueError
        except ValueError:
            raise LlmlabError(f"{path}: not a word2vec file (the first line must be 'WORDS DIMENSIONS')") from None
        return cls(*(_parse_binary if binary else _parse_text)(data, end + 1, n, dim, path))


def _parse_binary(data: bytes, pos: int, n: int, dim: int, path: Path):
    words, vectors = [], np.empty((n, dim), dtype=np.float32)
    width = 4 * dim
    for i in range(n):
        while data[pos:pos + 1] == b"\n":
            pos += 1
        space = data.find(b" ", pos, pos + 1000)
        if space < 0 or space + 1 + width > len(data):
            raise LlmlabError(f"{path}: truncated or corrupt at word {i + 1} of {n} (byte {pos})")
        try:
            words.append(data[pos:space].decode("utf-8"))
        except UnicodeDecodeError:
            raise LlmlabError(f"{path}: word {i + 1} is not UTF-8 (byte {pos}); corrupt file?") from None
        vectors[i] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
        pos = space + 1 + width
    if data[pos:].strip():
        raise LlmlabError(f"{path}: {len(data) - pos} bytes after the {n} vectors the header announces")
    return words, vectors


def _parse_text(data: bytes, pos: int, n: int, dim: int, path: Path):
    try:
        lines = data[pos:].decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise LlmlabError(f"{path}: not UTF-8 text at byte {pos + e.start} (a binary file? use .bin)") from None
    lines = [line for line in lines if line.strip()]
    if len(lines) != n:
        raise LlmlabError(f"{path}: the header announces {n} words but the file has {len(lines)} rows")
    words, vectors = [], np.empty((n, dim), dtype=np.float32)
    for i, line in enumerate(lines):
        parts = line.rstrip().split(" ")
        try:
            if len(parts) != dim + 1:
                raise ValueError
            vectors[i] = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            raise LlmlabError(f"{path}: row {i + 2} is not a word and {dim} numbers") from None
        words.append(parts[0])
    return words, vectors


# --- training --------------------------------------------------------------------------------------
@dataclass
class Word2VecConfig:
    sg: bool = True  # skip-gram (True) or CBOW
    dim: int = 100
    window: int = 5  # largest distance to a context word; each position draws 1..window
    negative: int = 5  # noise words per true word
    sample: float = 1e-3  # sub-sampling threshold (0: off)
    min_count: int = 5
    epochs: int = 5
    alpha: float | None = None  # starting learning rate; None: 0.025 skip-gram, 0.05 CBOW
    min_alpha: float = 1e-4
    ns_exponent: float = 0.75
    threads: int = 1
    seed: int = 1
    chunk_words: int = 10_000  # words per job handed to a thread
    alpha_decay: str = "sentences"  # progress of the linear decay: "sentences" (gensim) or "words" (word2vec.c)

    def __post_init__(self):
        if self.alpha is None:
            self.alpha = 0.025 if self.sg else 0.05
        if not isinstance(self.sg, bool):
            raise LlmlabError(f"sg must be True (skip-gram) or False (CBOW), not {self.sg!r}")
        for name in ("dim", "window", "negative", "min_count", "epochs", "threads", "chunk_words"):
            _whole(getattr(self, name), name, 1)
        _whole(self.seed, "seed", 0)
        for name in ("sample", "alpha", "min_alpha", "ns_exponent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise LlmlabError(f"{name} must be a finite number, not {value!r}")
        if self.sample < 0:
            raise LlmlabError(f"sample must be >= 0, not {self.sample}")
        if not 0 <= self.min_alpha <= self.alpha:
            raise LlmlabError(f"the learning rate falls from alpha to min_alpha: 0 <= min_alpha <= alpha, "
                              f"not alpha {self.alpha}, min_alpha {self.min_alpha}")
        if self.alpha_decay not in ("sentences", "words"):
            raise LlmlabError(f"alpha_decay must be 'sentences' or 'words', not {self.alpha_decay!r}")


class Word2Vec:
    """Train with `build_vocab(files)` then `train(files)`; the vectors are ``self.wv``."""

    def __init__(self, config: Word2VecConfig | None = None):
        self.config = config or Word2VecConfig()
        self.words: list[str] = []
        self.counts = np.zeros(0, dtype=np.int64)
        self.raw_words = 0  # tokens in the corpus, rare words included
        self.sentences = 0  # sentences in the corpus
        self.stats: dict = {}
        self.wv: KeyedVectors | None = None

    # vocabulary pass ---------------------------------------------------------------------------
    def build_vocab(self, files: list[str | Path]) -> "Word2Vec":
        counter: Counter = Counter()
        self.sentences = 0
        for sentence in iter_sentences(files):
            counter.update(sentence)
            self.sentences += 1
        self.raw_words = sum(counter.values())
        if not counter:
            raise LlmlabError(f"no words in {_names(files)}: the corpus is empty (or has no letters)")
        # most frequent first; equal counts keep first-seen order (as gensim sorts)
        kept = sorted(((w, c) for w, c in counter.items() if c >= self.config.min_count), key=lambda wc: -wc[1])
        if not kept:
            raise LlmlabError(f"no word occurs {self.config.min_count}+ times in {_names(files)} "
                              f"({self.raw_words} words, {len(counter)} distinct); lower min_count")
        self.words = [w for w, _ in kept]
        self.counts = np.array([c for _, c in kept], dtype=np.int64)
        return self

    def keep_probability(self) -> np.ndarray:
        """Per word, the chance of being kept by sub-sampling (word2vec.c's formula)."""
        if self.config.sample == 0:
            return np.ones(len(self.counts))
        threshold = self.config.sample * self.counts.sum()
        return np.minimum((np.sqrt(self.counts / threshold) + 1) * threshold / self.counts, 1.0)

    def alpha_at(self, pushed: int) -> float:
        """The learning rate after ``pushed`` sentences (or words, ``alpha_decay="words"``) handed
        out, counted over all epochs: linear from alpha to min_alpha."""
        cfg = self.config
        per_epoch = self.sentences if cfg.alpha_decay == "sentences" else self.raw_words
        return cfg.alpha - (cfg.alpha - cfg.min_alpha) * min(pushed / (cfg.epochs * per_epoch), 1.0)

    # training passes --------------------------------------------------------------------------
    def _chunks(self, files, index) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, sentence lengths) of each chunk of the corpus, -1 for a word out of the vocabulary."""
        for words, lengths in iter_chunks(iter_sentences(files), self.config.chunk_words):
            yield (np.fromiter(map(index.get, words, repeat(-1)), dtype=np.int32, count=len(words)),
                   np.array(lengths, dtype=np.int32))

    def _prepare(self, ids, lengths, keep, rng):
        """Chunk of ids -> (ids, sentence starts, reduced windows), rare and sub-sampled words dropped."""
        sentence = np.repeat(np.arange(len(lengths)), lengths)
        mask = (ids >= 0) & (rng.random(len(ids)) < keep[ids])
        ids = ids[mask]
        starts = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(np.bincount(sentence[mask], minlength=len(lengths)), out=starts[1:])
        windows = rng.integers(1, self.config.window + 1, size=len(ids)).astype(np.int32)
        return ids, starts, windows

    def train(self, files: str | Path | list[str | Path], progress: bool = True) -> dict:
        from tqdm import tqdm

        from llmlab.embed.word2vec_kernels import noise_tables, train_chunk_cbow, train_chunk_sg

        files = path_list(files)  # read by the vocabulary pass and the first epoch (or every epoch)
        cfg = self.config
        if not self.words:
            self.build_vocab(files)
        rng0 = np.random.default_rng(cfg.seed)
        # input vectors uniform in [-1/dim, 1/dim) as gensim 4 draws them (word2vec.c: half as wide); outputs 0
        syn0 = ((rng0.random((len(self.words), cfg.dim), dtype=np.float32) * 2 - 1) / cfg.dim).astype(np.float32)
        syn1neg = np.zeros_like(syn0)
        index = {w: i for i, w in enumerate(self.words)}
        keep, (cum_table, guide) = self.keep_probability(), noise_tables(self.counts, cfg.ns_exponent)
        kernel = train_chunk_sg if cfg.sg else train_chunk_cbow
        total = cfg.epochs * self.raw_words
        jobs: queue.Queue = queue.Queue(maxsize=2 * cfg.threads)
        lock, done, errors = threading.Lock(), {"raw": 0, "effective": 0}, []
        bar = tqdm(total=total, unit="word", unit_scale=True, desc="word2vec", disable=not progress)
        start = time.perf_counter()

        def worker():
            while (job := jobs.get()) is not None:
                ids, starts, windows, a0, a1, state, raw = job
                try:
                    kernel(syn0, syn1neg, ids, starts, windows, cum_table, guide, cfg.negative, a0, a1, state)
                except Exception as e:  # noqa: BLE001 - reported by the main thread
                    errors.append(e)
                with lock:
                    done["raw"] += raw
                    done["effective"] += len(ids)
                    bar.update(raw)
                    bar.set_postfix_str(f"{done['effective'] / (time.perf_counter() - start):,.0f} effective words/s",
                                        refresh=False)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(cfg.threads)]
        for t in threads:
            t.start()
        try:
            pushed = 0
            # the first epoch's chunks, for the later ones
            kept: list | None = [] if cfg.epochs > 1 and self.raw_words <= CACHE_WORDS else None
            for epoch in range(cfg.epochs):
                chunks = kept if epoch and kept is not None else self._chunks(files, index)
                for k, (all_ids, lengths) in enumerate(chunks):
                    if epoch == 0 and kept is not None:
                        kept.append((all_ids, lengths))
                    rng = np.random.default_rng([cfg.seed, epoch, k])
                    ids, starts, windows = self._prepare(all_ids, lengths, keep, rng)
                    a0 = self.alpha_at(pushed)
                    pushed += len(lengths) if cfg.alpha_decay == "sentences" else len(all_ids)
                    a1 = self.alpha_at(pushed)
                    state = np.uint64(rng.integers(1, 2**63))
                    jobs.put((ids, starts, windows, a0, a1, state, len(all_ids)))
                    if errors:
                        break
                if errors:
                    break
        finally:
            for _ in threads:
                jobs.put(None)
            for t in threads:
                t.join()
            bar.close()
        if errors:
            raise errors[0]
        seconds = time.perf_counter() - start
        self.wv = KeyedVectors(self.words, syn0)
        self.stats = {"raw_words": done["raw"], "effective_words": done["effective"], "seconds": round(seconds, 3),
                      "effective_words_per_s": round(done["effective"] / seconds), "vocab_size": len(self.words),
                      "corpus_words": self.raw_words, "corpus_sentences": self.sentences, "threads": cfg.threads}
        return self.stats

    # files ------------------------------------------------------------------------------------
    def save(self, directory: str | Path, files: list[str | Path] = ()) -> Path:
        """DIR/vectors.bin (word2vec binary) and DIR/word2vec.json (settings, vocabulary counts, figures)."""
        if self.wv is None:
            raise LlmlabError("nothing to save: the model is not trained yet")
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise LlmlabError(f"{directory}: exists and is not a folder")
        self.wv.save(directory / VECTORS_FILE, binary=True)
        info = {"config": asdict(self.config), "corpus": [str(f) for f in files], "training": self.stats,
                "vocab": dict(zip(self.words, self.counts.tolist()))}
        atomic_write_text(directory / INFO_FILE, json.dumps(info, ensure_ascii=False, indent=1))
        return directory


def load_info(directory: str | Path) -> dict:
    """The settings, vocabulary counts and training figures saved beside the vectors ({} if absent)."""
    path = Path(directory) / INFO_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise LlmlabError(f"{path}: not valid JSON ({e})") from None


def train_word2vec(files: str | Path | list[str | Path], config: Word2VecConfig | None = None,
                   progress: bool = True) -> Word2Vec:
    files = path_list(files)  # read more than once: a generator would be spent after the first pass
    model = Word2Vec(config).build_vocab(files)
    model.train(files, progress=progress)
    return model


def _names(files) -> str:
    names = [str(f) for f in files]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "") if names else "no files"


# --- evaluation (gensim's rules) ---------------------------------------------------------------------
def evaluate_analogies(kv: KeyedVectors, path: str | Path, restrict_vocab: int | None = 30_000,
                       method: str = "add", block: int = 256) -> dict:
    """Accuracy on questions-words.txt style files (``: section`` lines, then ``a b c d``):
    d must be the best word for a : b = c : ?, searched among the ``restrict_vocab`` most
    frequent words, leaving out a, b and c. As gensim's ``evaluate_word_analogies``: words are
    compared case-insensitively, questions with a word outside those words are skipped."""
    path = Path(path)
    ok = {w.lower(): i for i, w in reversed(list(enumerate(kv.words[:restrict_vocab])))}
    sections, questions, skipped = [], [], 0
    for line in read_text(path, errors="replace").splitlines():
        if line.startswith(": "):
            sections.append({"section": line.lstrip(": ").strip(), "correct": 0, "total": 0})
            continue
        words = line.lower().split()
        if len(words) != 4:
            continue
        if not sections:
            raise LlmlabError(f"{path}: a question before the first ': section' line")
        if not all(w in ok for w in words):
            skipped += 1
            continue
        questions.append((len(sections) - 1, *(ok[w] for w in words)))
    unit = kv.unit[:restrict_vocab]
    q = np.array(questions, dtype=np.int64).reshape(-1, 5)
    predicted = np.empty(len(q), dtype=np.int64)
    for s in range(0, len(q), block):
        a, b, c = q[s:s + block, 1], q[s:s + block, 2], q[s:s + block, 3]
        if method == "add":
            scores = (unit[b] - unit[a] + unit[c]) @ unit.T  # (block, V): argmax along rows, not down columns
        elif method == "mul":
            cos = lambda i: (1 + unit[i] @ unit.T) / 2
            scores = cos(b) * cos(c) / (cos(a) + 1e-3)
        else:
            raise LlmlabError(f"analogy method must be 'add' or 'mul', not {method!r}")
        rows = np.arange(len(a))
        for i in (a, b, c):
            scores[rows, i] = -np.inf
        predicted[s:s + block] = scores.argmax(axis=1)
    for (sec, *_), p, d in zip(q.tolist(), predicted.tolist(), q[:, 4].tolist()):
        sections[sec]["total"] += 1
        sections[sec]["correct"] += p == d
    correct, total = int((predicted == q[:, 4]).sum()), len(q)
    for sec in sections:
        sec["accuracy"] = sec["correct"] / sec["total"] if sec["total"] else 0.0
    return {"file": str(path), "method": method, "restrict_vocab": restrict_vocab, "sections": sections,
            "correct": correct, "total": total, "accuracy": correct / total if total else 0.0,
            "skipped_oov": skipped}


def spearman(x, y) -> float:
    """Spearman's rank correlation: Pearson's r of the ranks (ties share their mean rank)."""
    return pearson(_ranks(np.asarray(x, float)), _ranks(np.asarray(y, float)))


def pearson(x, y) -> float:
    """Pearson's r; NaN when either side is constant (no correlation is defined)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    first = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = ((starts + ends + 1) / 2)[group]  # mean of the 1-based ranks starts+1..ends
    return ranks


def evaluate_pairs(kv: KeyedVectors, path: str | Path, restrict_vocab: int | None = None) -> dict:
    """Spearman correlation between human scores and cosine similarities on ``word1<TAB>word2<TAB>score``
    lines (``#`` comments skipped), as gensim's ``evaluate_word_pairs``: case-insensitive, pairs with
    an unknown word are skipped and counted."""
    path = Path(path)
    ok = {w.lower(): i for i, w in reversed(list(enumerate(kv.words[:restrict_vocab])))}
    gold, model, oov = [], [], 0
    for line in read_text(path, errors="replace").splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.lower().split("\t")
        try:
            a, b, score = parts
            score = float(score)
        except ValueError:
            continue
        if a not in ok or b not in ok:
            oov += 1
            continue
        gold.append(score)
        model.append(float(kv.unit[ok[a]] @ kv.unit[ok[b]]))
    if len(gold) < 2:
        raise LlmlabError(f"{path}: fewer than two pairs with both words in the vocabulary ({oov} unknown)")
    return {"file": str(path), "spearman": spearman(gold, model), "pearson": pearson(gold, model),
            "pairs": len(gold), "oov_pairs": oov, "oov_ratio": oov / (len(gold) + oov)}


EVAL_FILES = {"analogies": "questions-words.txt", "wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}


def evaluate_all(kv: KeyedVectors, data_dir: str | Path, restrict_vocab: int = 30_000) -> dict:
    """questions-words.txt (3CosAdd and 3CosMul), WordSim-353 and SimLex-999 from ``data_dir``."""
    data_dir = Path(data_dir)
    missing = [name for name in EVAL_FILES.values() if not (data_dir / name).is_file()]
    if missing:
        raise LlmlabError(f"{data_dir}: missing {', '.join(missing)}")
    return {"analogies": evaluate_analogies(kv, data_dir / EVAL_FILES["analogies"], restrict_vocab),
            "analogies_3cosmul": evaluate_analogies(kv, data_dir / EVAL_FILES["analogies"], restrict_vocab, "mul"),
            "wordsim353": evaluate_pairs(kv, data_dir / EVAL_FILES["wordsim353"]),
            "simlex999": evaluate_pairs(kv, data_dir / EVAL_FILES["simlex999"])}


# --- the primer's examples as a report ------------------------------------------------------------
PRIMER_WORDS = ["baby", "newborn", "human", "apple"]
BANK_SENTENCES = ["She sat on the bank of the river and watched the water.",
                  "He took the cheque to the bank and paid it into his account."]


def primer_report(kv: KeyedVectors, info: dict, results: dict, topn: int = 8) -> str:
    """report.md: the scores, the neighbours and similarities of the primer's words, and *bank*'s one
    vector; every figure comes from ``kv`` as it is, with what the corpus count says about it."""
    counts = info.get("vocab", {})
    training = info.get("training", {})
    cfg = info.get("config", {})
    min_count = cfg.get("min_count", "?")
    corpus = training.get("corpus_words")
    lines = ["# word2vec: the primer's examples on these vectors", ""]
    lines.append(f"{len(kv):,} words x {kv.dim} dimensions"
                 + (f", {'skip-gram' if cfg.get('sg', True) else 'CBOW'}, {cfg.get('epochs')} epochs, "
                    f"min_count {min_count}" if cfg else "")
                 + (f", trained on {corpus:,} words of {_names(info.get('corpus', []))}." if corpus else "."))
    lines += ["", "## Scores", "", "| benchmark | score | counted | skipped (unknown words) |", "|---|---|---|---|"]
    for key, label in [("analogies", "analogies, 3CosAdd"), ("analogies_3cosmul", "analogies, 3CosMul")]:
        r = results[key]
        lines.append(f"| {label} (top {r['restrict_vocab']:,} words) | {100 * r['accuracy']:.1f}% | "
                     f"{r['total']:,} questions | {r['skipped_oov']:,} |")
    for key, label in [("wordsim353", "WordSim-353 Spearman"), ("simlex999", "SimLex-999 Spearman")]:
        r = results[key]
        rho = f"{r['spearman']:.3f}" if np.isfinite(r["spearman"]) else "n/a (all equal)"
        lines.append(f"| {label} | {rho} | {r['pairs']} pairs | {r['oov_pairs']} |")
    lines += ["", "Analogy accuracy per section (3CosAdd): "
              + ", ".join(f"{s['section']} {100 * s['accuracy']:.0f}% of {s['total']}"
                          for s in results["analogies"]["sections"]) + ".", ""]

    lines += ["## Nearest neighbours", ""]
    present = [w for w in PRIMER_WORDS if w in kv]
    for w in PRIMER_WORDS:
        if w in kv:
            near = ", ".join(f"{n} {s:.2f}" for n, s in kv.most_similar(w, topn=topn))
            lines.append(f"- **{w}** (seen {counts.get(w, '?')} times): {near}")
        else:
            lines.append(f"- **{w}**: no vector: the corpus has it fewer than {min_count} times, so "
                         "it was dropped (min_count); these vectors cannot say anything about it")
    lines += ["", "## Similarities (cosine)", "", "| pair | cosine |", "|---|---|"]
    for i, a in enumerate(PRIMER_WORDS):
        for b in PRIMER_WORDS[i + 1:]:
            value = f"{kv.similarity(a, b):.3f}" if a in kv and b in kv else "n/a (a word has no vector)"
            lines.append(f"| {a} - {b} | {value} |")
    rare = [w for w in present if isinstance(counts.get(w), int) and counts[w] < 100]
    lines += ["", "What this corpus can show: " + (
        f"{', '.join(rare)} occur{'s' if len(rare) == 1 else ''} fewer than 100 times, so "
        f"{'its vector is' if len(rare) == 1 else 'their vectors are'} noisy; " if rare else "")
        + "a corpus of a few million words gives reliable neighbours only for common words, and "
        "a missing word cannot be compared at all.", ""]

    lines += ["## One vector per word: *bank*", ""]
    if "bank" in kv:
        for sentence in BANK_SENTENCES:
            vec = kv[[t for t in tokenize(sentence) if t == "bank"][0]]
            lines.append(f"- \"{sentence}\" -> bank = [{', '.join(f'{x:+.4f}' for x in vec[:6])}, ...]")
        lines += ["", "The same vector in both sentences (cosine 1.000): a static embedding is looked up by "
                  "the word alone, so the river bank and the money bank share one point; its neighbours show "
                  "which uses dominate this corpus: "
                  + ", ".join(f"{n} {s:.2f}" for n, s in kv.most_similar("bank", topn=topn)) + ".", ""]
    else:
        lines += [f"*bank* has no vector here (fewer than {min_count} occurrences).", ""]
    return "\n".join(lines)


def _whole(value, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise LlmlabError(f"{name} must be at least {low} (a whole number), not {value!r}")
