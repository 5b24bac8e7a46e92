"""GRU and LSTM cells and layers against torch.nn on the same weights, and the fast path
(input projections in one matmul, masked time loop) against the plain cell-by-cell reference."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from llmlab.nn.rnn import GRU, LSTM, GRUCell, LSTMCell

torch.manual_seed(0)
TOL = dict(rtol=0, atol=1e-5)
LAYERS = {"gru": (GRU, torch.nn.GRU), "lstm": (LSTM, torch.nn.LSTM)}


def pair(kind: str, n_in: int, H: int, L: int, bidirectional: bool):
    ours_cls, torch_cls = LAYERS[kind]
    ours = ours_cls(n_in, H, num_layers=L, bidirectional=bidirectional)
    theirs = torch_cls(n_in, H, num_layers=L, bidirectional=bidirectional, batch_first=True)
    assert set(ours.state_dict()) == set(theirs.state_dict())  # same names, so weights copy by name
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def initial(kind: str, L: int, D: int, B: int, H: int):
    h0 = torch.randn(L * D, B, H)
    return h0 if kind == "gru" else (h0, torch.randn(L * D, B, H))


def assert_state_close(a, b):
    for x, y in zip((a,) if isinstance(a, torch.Tensor) else a, (b,) if isinstance(b, torch.Tensor) else b):
        torch.testing.assert_close(x, y, **TOL)


def test_cells_match_torch():
    x, h, c = torch.randn(4, 6), torch.randn(4, 5), torch.randn(4, 5)
    gru, tgru = GRUCell(6, 5), torch.nn.GRUCell(6, 5)
    gru.load_state_dict(tgru.state_dict())
    torch.testing.assert_close(gru(x, h), tgru(x, h), **TOL)
    torch.testing.assert_close(gru(x), tgru(x), **TOL)
    torch.testing.assert_close(gru.reference(x, h), tgru(x, h), **TOL)
    lstm, tlstm = LSTMCell(6, 5), torch.nn.LSTMCell(6, 5)
    lstm.load_state_dict(tlstm.state_dict())
    assert_state_close(lstm(x, (h, c)), tlstm(x, (h, c)))
    assert_state_close(lstm.reference(x, (h, c)), tlstm(x, (h, c)))
    assert tuple(lstm.weight_ih.shape) == (20, 6) and tuple(gru.weight_hh.shape) == (15, 5)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("L,bidirectional", [(1, False), (3, False), (2, True)])
@pytest.mark.parametrize("with_state", [False, True])
def test_layer_matches_torch(kind, L, bidirectional, with_state):
    B, T, n_in, H, D = 3, 7, 6, 5, 2 if bidirectional else 1
    ours, theirs = pair(kind, n_in, H, L, bidirectional)
    x = torch.randn(B, T, n_in)
    state = initial(kind, L, D, B, H) if with_state else None
    out, final = ours(x, state)
    t_out, t_final = theirs(x, state)
    assert out.shape == (B, T, D * H)
    torch.testing.assert_close(out, t_out, **TOL)
    assert_state_close(final, t_final)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_ragged_lengths_match_packed_torch_and_each_sequence_alone(kind, bidirectional):
    B, T, n_in, H, L, D = 4, 9, 6, 5, 2, 2 if bidirectional else 1
    ours, theirs = pair(kind, n_in, H, L, bidirectional)
    lengths = torch.tensor([9, 3, 6, 1])
    x = torch.randn(B, T, n_in)
    state = initial(kind, L, D, B, H)
    out, final = ours(x, state, lengths=lengths)

    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    t_out, t_final = theirs(packed, state)
    t_out, _ = pad_packed_sequence(t_out, batch_first=True, total_length=T)
    torch.testing.assert_close(out, t_out, **TOL)  # zeros at padding, as torch's
    assert_state_close(final, t_final)

    for b, n in enumerate(lengths.tolist()):  # the padding has no effect at all
        s_b = state[:, b:b + 1] if kind == "gru" else tuple(s[:, b:b + 1] for s in state)
        alone, alone_final = ours(x[b:b + 1, :n], s_b)
        torch.testing.assert_close(out[b:b + 1, :n], alone, **TOL)
        final_b = final[:, b:b + 1] if kind == "gru" else tuple(s[:, b:b + 1] for s in final)
        assert_state_close(final_b, alone_final)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_fast_path_equals_reference(kind):
    B, T, n_in, H, L = 3, 6, 4, 5, 2
    ours, _ = pair(kind, n_in, H, L, bidirectional=True)
    x, lengths = torch.randn(B, T, n_in), torch.tensor([6, 2, 4])
    state = initial(kind, L, 2, B, H)
    out, final = ours(x, state, lengths=lengths)
    ref_out, ref_final = ours.reference(x, state, lengths=lengths)
    torch.testing.assert_close(out, ref_out, **TOL)
    assert_state_close(final, ref_final)


def test_gradients_flow_and_bad_lengths_are_refused():
    gru = GRU(3, 4)
    x = torch.randn(2, 5, 3, requires_grad=True)
    out, h = gru(x, lengths=torch.tensor([5, 2]))
    h.sum().backward()
    assert x.grad[1, 2:].abs().sum() == 0 and x.grad[1, :2].abs().sum() > 0  # padding gets no gradient
    with pytest.raises(ValueError, match="lengths"):
        gru(x, lengths=torch.tensor([6, 2]))
