"""word2vec's SGD steps: plain numpy references and the numba kernels that train a chunk.

One update with negative sampling (Mikolov et al. 2013b), for an input vector ``h`` and
targets ``t_0`` (the true word, label 1) and ``t_1..t_k`` (noise words, label 0):

    g_d     = alpha * (label_d - sigmoid(h . out[t_d]))
    out[t_d] += g_d * h                       (each target in turn, with h fixed)
    h        += sum_d g_d * out[t_d]          (out[t_d] before its own update)

Skip-gram: ``h`` is the input vector of one context word and ``t_0`` the centre word,
as word2vec.c and gensim pair them. CBOW: ``h`` is the mean of the context words'
input vectors, ``t_0`` the centre word, and every context word receives the full ``h``
correction. A noise word equal to the true word is skipped. The sigmoid is computed
exactly (no lookup table, no clipping).

Noise words come from word2vec.c's linear congruential generator
(``r = r * 25214903917 + 11`` mod 2^64, use the low 31 bits of ``r >> 16``), drawn into a
small buffer and looked up by bisection in the cumulative unigram^0.75 table, narrowed
first by a guide table so that most draws take one or two steps (`noise_tables`). `train_chunk_reference`
replays the same draws with Python integers and the numpy steps, so the kernels are
tested equal to the references on tiny inputs (tests/embed/test_word2vec.py).

The kernels release the GIL (``nogil``): Python threads each train their own chunk of
sentences at the same time and write the shared matrices without locks ("Hogwild", as
word2vec.c and gensim do). Rows are float32 and contiguous, and nothing is allocated
inside the loops.
"""

import numpy as np
from numba import njit

LCG_MUL = 25214903917
LCG_ADD = 11
MASK64 = (1 << 64) - 1
NOISE_DOMAIN = 1 << 31  # the noise table's cumulative weights run up to this
GUIDE_SHIFT = 15  # guide buckets of 2^15 values: 2^16 buckets


# --- the references: one step in numpy, a whole chunk in plain Python ------------------
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sgns_step_reference(syn0, syn1neg, h, neu1e, center, negatives, alpha):
    """One negative-sampling update of the output rows for input vector ``h`` (D,).
    Adds the input-side correction to ``neu1e`` (D,) and returns it."""
    for target, label in [(center, 1.0)] + [(int(n), 0.0) for n in negatives if n != center]:
        out = syn1neg[target].copy()
        g = alpha * (label - sigmoid(np.float32(h @ out)))
        neu1e += np.float32(g) * out
        syn1neg[target] += np.float32(g) * h
    return neu1e


def skipgram_pair_reference(syn0, syn1neg, center, context, negatives, alpha):
    """Skip-gram: the context word's input vector learns to predict the centre word."""
    h = syn0[context].copy()
    neu1e = sgns_step_reference(syn0, syn1neg, h, np.zeros_like(h), center, negatives, alpha)
    syn0[context] += neu1e


def cbow_step_reference(syn0, syn1neg, center, contexts, negatives, alpha):
    """CBOW: the mean of the context vectors predicts the centre word."""
    h = syn0[list(contexts)].mean(axis=0, dtype=np.float32)
    neu1e = sgns_step_reference(syn0, syn1neg, h, np.zeros_like(h), center, negatives, alpha)
    for c in contexts:
        syn0[c] += neu1e


def noise_tables(counts, exponent=0.75):
    """(cumulative unigram^exponent weights scaled to 0..NOISE_DOMAIN, guide) as int64 arrays.
    Word i is drawn for values in [cum[i-1], cum[i]); ``guide[b]`` is the first word that
    can be drawn in bucket b (values b << GUIDE_SHIFT ...), ``guide[b+1]`` the last."""
    weights = np.asarray(counts, dtype=np.float64) ** exponent
    cum = np.round(np.cumsum(weights) / weights.sum() * NOISE_DOMAIN).astype(np.int64)
    cum[-1] = NOISE_DOMAIN
    edges = np.arange(NOISE_DOMAIN >> GUIDE_SHIFT, dtype=np.int64) << GUIDE_SHIFT
    guide = np.searchsorted(cum, edges, side="right")
    return cum, np.append(guide, len(cum) - 1).astype(np.int64)


def draw_reference(cum_table, value):
    """The word drawn for ``value``: the smallest i with cum_table[i] > value."""
    return int(np.searchsorted(cum_table, value, side="right"))


def train_chunk_reference(syn0, syn1neg, ids, starts, windows, cum_table, negative, alpha0, alpha1, rng, sg):
    """Plain-Python twin of the numba chunk kernels (same order, same random draws)."""
    n = len(ids)
    for s in range(len(starts) - 1):
        a, e = int(starts[s]), int(starts[s + 1])
        for i in range(a, e):
            alpha = alpha0 + (alpha1 - alpha0) * (i / n)
            b = int(windows[i])
            ctx = [int(ids[j]) for j in range(max(a, i - b), min(e, i + b + 1)) if j != i]
            groups = [[c] for c in ctx] if sg else ([ctx] if ctx else [])
            for group in groups:
                negs = []
                for _ in range(negative):
                    rng = (rng * LCG_MUL + LCG_ADD) & MASK64
                    negs.append(draw_reference(cum_table, (rng >> 16) & (NOISE_DOMAIN - 1)))
                if sg:
                    skipgram_pair_reference(syn0, syn1neg, int(ids[i]), group[0], negs, alpha)
                else:
                    cbow_step_reference(syn0, syn1neg, int(ids[i]), group, negs, alpha)
    return rng


# --- the numba kernels -------------------------------------------------------------------
@njit(nogil=True, cache=True, inline="always")
def _draw_negatives(rng, cum_table, guide, out):
    """Fill ``out`` with noise-word ids; returns the generator's next state. The guide narrows
    the bisection to the few words whose cumulative range overlaps the value's bucket."""
    for d in range(out.shape[0]):
        rng = rng * np.uint64(LCG_MUL) + np.uint64(LCG_ADD)
        value = np.int64((rng >> np.uint64(16)) & np.uint64(NOISE_DOMAIN - 1))
        bucket = value >> GUIDE_SHIFT
        lo, hi = guide[bucket], guide[bucket + 1]
        while lo < hi:  # bisection: first index whose cumulative weight exceeds value
            mid = (lo + hi) >> 1
            if cum_table[mid] > value:
                hi = mid
            else:
                lo = mid + 1
        out[d] = lo
    return rng


@njit(nogil=True, fastmath=True, cache=True, inline="always")
def _sgns_step(syn1neg, h, neu1e, center, negatives, alpha):
    """Kernel of `sgns_step_reference` (``neu1e`` must be zeroed by the caller)."""
    dim = h.shape[0]
    for d in range(negatives.shape[0] + 1):
        if d == 0:
            target, label = center, np.float32(1.0)
        else:
            target, label = negatives[d - 1], np.float32(0.0)
            if target == center:
                continue
        out = syn1neg[target]
        f = np.float32(0.0)
        for k in range(dim):
            f += h[k] * out[k]
        g = np.float32(alpha) * (label - np.float32(1.0) / (np.float32(1.0) + np.exp(-f)))
        for k in range(dim):
            neu1e[k] += g * out[k]
            out[k] += g * h[k]


@njit(nogil=True, fastmath=True, cache=True)
def skipgram_pair(syn0, syn1neg, center, context, negatives, alpha, neu1e):
    """Kernel of `skipgram_pair_reference`."""
    h = syn0[context]
    neu1e[:] = 0.0
    _sgns_step(syn1neg, h, neu1e, center, negatives, alpha)
    for k in range(h.shape[0]):
        h[k] += neu1e[k]


@njit(nogil=True, fastmath=True, cache=True)
def train_chunk_sg(syn0, syn1neg, ids, starts, windows, cum_table, guide, negative, alpha0, alpha1, rng):
    """Skip-gram over the sentences ``ids[starts[s]:starts[s+1]]``; ``windows[i]`` is the
    reduced window of position i. alpha falls linearly from alpha0 to alpha1 over the chunk.
    Returns the generator state."""
    dim = syn0.shape[1]
    neu1e = np.empty(dim, dtype=np.float32)
    negs = np.empty(negative, dtype=np.int64)
    n = ids.shape[0]
    for s in range(starts.shape[0] - 1):
        a, e = starts[s], starts[s + 1]
        for i in range(a, e):
            alpha = alpha0 + (alpha1 - alpha0) * (i / n)
            b = windows[i]
            for j in range(max(a, i - b), min(e, i + b + 1)):
                if j == i:
                    continue
                rng = _draw_negatives(rng, cum_table, guide, negs)
                h = syn0[ids[j]]
                neu1e[:] = 0.0
                _sgns_step(syn1neg, h, neu1e, ids[i], negs, alpha)
                for k in range(dim):
                    h[k] += neu1e[k]
    return rng


@njit(nogil=True, fastmath=True, cache=True)
def train_chunk_cbow(syn0, syn1neg, ids, starts, windows, cum_table, guide, negative, alpha0, alpha1, rng):
    """CBOW (mean of the context vectors) over a chunk; arguments as `train_chunk_sg`."""
    dim = syn0.shape[1]
    h = np.empty(dim, dtype=np.float32)
    neu1e = np.empty(dim, dtype=np.float32)
    negs = np.empty(negative, dtype=np.int64)
    n = ids.shape[0]
    for s in range(starts.shape[0] - 1):
        a, e = starts[s], starts[s + 1]
        for i in range(a, e):
            alpha = alpha0 + (alpha1 - alpha0) * (i / n)
            b = windows[i]
            lo, hi = max(a, i - b), min(e, i + b + 1)
            if hi - lo < 2:  # no context word
                continue
            h[:] = 0.0
            for j in range(lo, hi):
                if j != i:
                    row = syn0[ids[j]]
                    for k in range(dim):
                        h[k] += row[k]
            inv = np.float32(1.0 / (hi - lo - 1))
            for k in range(dim):
                h[k] *= inv
            rng = _draw_negatives(rng, cum_table, guide, negs)
            neu1e[:] = 0.0
            _sgns_step(syn1neg, h, neu1e, ids[i], negs, alpha)
            for j in range(lo, hi):
                if j != i:
                    row = syn0[ids[j]]
                    for k in range(dim):
                        row[k] += neu1e[k]
    return rng
