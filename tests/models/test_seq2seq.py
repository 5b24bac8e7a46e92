"""The three encoder-decoder models: shapes, padding, causality, greedy decoding against teacher
forcing, the transformer's masks and attention paths, parameter budgets, and learning a copy task."""

import pytest
import torch
import torch.nn.functional as F

from llmlab.models.seq2seq import (
    KINDS,
    Seq2SeqConfig,
    build_seq2seq,
    count_parameters,
    equal_budget_configs,
)
from llmlab.nn.attention import reference_attention

V, PAD, BOS, EOS = 13, 0, 1, 2  # token ids 3..12 are the symbols


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors here are tiny: one thread is faster than two sharing them, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(kind: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(V, V + 2, kind=kind, dim=16, n_layers=2, n_heads=2, **kw)
    return build_seq2seq(cfg).eval()


def padded(seqs, fill: int = PAD) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), fill, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out


g = torch.Generator().manual_seed(1)
SRC_SEQS = [torch.randint(3, V, (n,), generator=g).tolist() for n in (6, 2, 4)]
TGT_SEQS = [[BOS] + torch.randint(3, V, (n,), generator=g).tolist() for n in (3, 5, 1)]


@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind):
    model = make(kind)
    src, lengths, tgt = padded(SRC_SEQS), torch.tensor([6, 2, 4]), padded(TGT_SEQS)
    assert model(src, lengths, tgt).shape == (3, tgt.shape[1], V + 2)
    ids = model.greedy_decode(src, lengths, max_len=7, bos=BOS, eos=EOS)
    assert ids.dtype == torch.long and ids.shape[0] == 3 and 1 <= ids.shape[1] <= 7
    if kind == "rnn":
        with pytest.raises(ValueError, match="no attention"):
            model.greedy_decode(src, lengths, 7, BOS, EOS, return_attention=True)
    else:
        ids, weights = model.greedy_decode(src, lengths, 7, BOS, EOS, return_attention=True)
        assert weights.shape == (3, ids.shape[1], 6)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, ids.shape[1]))
        assert (weights[1, :, 2:] == 0).all()  # the second source has 2 real tokens


@pytest.mark.parametrize("kind", KINDS)
def test_padded_batch_equals_each_sequence_alone(kind):
    model = make(kind)
    src = padded(SRC_SEQS, fill=7)  # padding with a real symbol: it must be ignored all the same
    lengths = torch.tensor([len(s) for s in SRC_SEQS])
    tgt = padded(TGT_SEQS)
    with torch.no_grad():
        batch = model(src, lengths, tgt)
        for i, (s, t) in enumerate(zip(SRC_SEQS, TGT_SEQS)):
            alone = model(torch.tensor([s]), torch.tensor([len(s)]), torch.tensor([t]))
            torch.testing.assert_close(batch[i:i + 1, :len(t)], alone, rtol=0, atol=1e-5)
        ids = model.greedy_decode(src, lengths, 6, BOS, EOS)
        for i, s in enumerate(SRC_SEQS):
            alone = model.greedy_decode(torch.tensor([s]), None, 6, BOS, EOS)
            assert ids[i, :alone.shape[1]].tolist() == alone[0].tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_logits_at_t_do_not_depend_on_later_targets(kind):
    model = make(kind)
    src, lengths = padded(SRC_SEQS), torch.tensor([6, 2, 4])
    tgt = torch.randint(3, V, (3, 6), generator=g)
    tgt[:, 0] = BOS
    with torch.no_grad():
        full = model(src, lengths, tgt)
        for t in (0, 2, 4):
            changed = tgt.clone()
            changed[:, t + 1:] = torch.randint(3, V, changed[:, t + 1:].shape, generator=g)
            torch.testing.assert_close(model(src, lengths, changed)[:, :t + 1], full[:, :t + 1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_decode_equals_argmax_of_teacher_forcing(kind):
    model = make(kind, seed=3)
    src, lengths = padded(SRC_SEQS), torch.tensor([6, 2, 4])
    ids = model.greedy_decode(src, lengths, max_len=8, bos=BOS, eos=EOS)
    tgt_in = torch.cat((torch.full((3, 1), BOS), ids[:, :-1]), dim=1)
    with torch.no_grad():
        argmax = model(src, lengths, tgt_in).argmax(-1)  # (B, n)
    for i in range(3):
        row = ids[i].tolist()
        n = row.index(EOS) + 1 if EOS in row else len(row)
        assert argmax[i, :n].tolist() == row[:n]
        assert all(x == PAD for x in row[n:])


def test_transformer_cross_attention_ignores_padded_source():
    model = make("transformer")
    src, lengths, tgt = padded(SRC_SEQS), torch.tensor([6, 2, 4]), padded(TGT_SEQS)
    other = src.clone()
    other[1, 2:], other[2, 4:] = 11, 5  # change only what lies past each length
    with torch.no_grad():
        logits, weights = model(src, lengths, tgt, return_attention=True)
        logits2, weights2 = model(other, lengths, tgt, return_attention=True)
    torch.testing.assert_close(logits2, logits, rtol=0, atol=1e-6)
    assert (weights[1, :, 2:] == 0).all() and (weights[2, :, 4:] == 0).all()
    torch.testing.assert_close(weights2, weights, rtol=0, atol=1e-6)


def test_transformer_sdpa_equals_written_out_attention():
    model = make("transformer")
    src, lengths, tgt = padded(SRC_SEQS), torch.tensor([6, 2, 4]), padded(TGT_SEQS)
    with torch.no_grad():
        fast = model(src, lengths, tgt)
        for m in model.modules():
            if hasattr(m, "attend"):
                m.attend = reference_attention
        torch.testing.assert_close(model(src, lengths, tgt), fast, rtol=0, atol=1e-5)


def test_equal_budget_configs():
    configs = equal_budget_configs(vocab_size=40, budget=200_000, n_layers=2)
    assert set(configs) == set(KINDS)
    counts = {kind: count_parameters(build_seq2seq(cfg)) for kind, cfg in configs.items()}
    for kind, n in counts.items():
        assert abs(n - 200_000) / 200_000 < 0.02, (kind, n)
        assert configs[kind].kind == kind and configs[kind].n_layers == 2
    # recurrence is cheap per unit of width: the plain RNN gets the widest model
    assert configs["rnn"].dim > configs["attention"].dim and configs["rnn"].dim > configs["transformer"].dim


def test_config_validation():
    with pytest.raises(ValueError, match="kind"):
        Seq2SeqConfig(10, 10, kind="lstm")
    with pytest.raises(ValueError, match="n_heads"):
        Seq2SeqConfig(10, 10, kind="transformer", dim=30, n_heads=4)


@pytest.mark.parametrize("kind,lr", [("rnn", 1e-2), ("attention", 1e-2), ("transformer", 3e-3)])
def test_learns_a_copy_task_exactly(kind, lr):
    # 20 random sequences of 5-8 symbols; the target is the source followed by EOS
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 9, (20,), generator=gen)
    seqs = [torch.randint(3, V, (n,), generator=gen).tolist() for n in lengths.tolist()]
    src = padded(seqs)
    tgt_in, tgt_out = padded([[BOS] + s for s in seqs]), padded([s + [EOS] for s in seqs])
    torch.manual_seed(0)
    model = build_seq2seq(Seq2SeqConfig(V, V, kind=kind, dim=32, n_layers=1, n_heads=4))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(300):
        logits = model(src, lengths, tgt_in)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 24:
            ids = model.greedy_decode(src, lengths, max_len=9, bos=BOS, eos=EOS)
            exact = [ids[i, :len(s) + 1].tolist() == s + [EOS] for i, s in enumerate(seqs)]
            if all(exact):
                break
    assert sum(exact) / len(exact) == 1.0, f"{kind}: {sum(exact)}/20 copied exactly after {step + 1} steps"
