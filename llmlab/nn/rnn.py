"""Recurrent layers: the GRU and the LSTM, written out.

A recurrent network reads a sequence one position at a time and carries everything it has
seen in a fixed-size state. The GRU (Cho et al. 2014), in torch's formulation:

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)          reset gate
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)          update gate
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))       candidate state
    h' = (1 - z) * n + z * h

The LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000) keeps a
second, additive memory cell c:

    i  = sigmoid(W_ii x + b_ii + W_hi h + b_hi)          input gate
    f  = sigmoid(W_if x + b_if + W_hf h + b_hf)          forget gate
    g  = tanh(W_ig x + b_ig + W_hg h + b_hg)             candidate cell
    o  = sigmoid(W_io x + b_io + W_ho h + b_ho)          output gate
    c' = f * c + i * g
    h' = o * tanh(c')

Parameters are laid out as torch's: the gate matrices stacked in the order above, so
``weight_ih`` is (3H, I) for the GRU and (4H, I) for the LSTM. `GRUCell` / `LSTMCell` carry
``torch.nn.GRUCell``'s names (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``); the
layers `GRU` / `LSTM` carry ``torch.nn.GRU``'s (``weight_ih_l0``, ``weight_hh_l0_reverse``...),
so a state dict copies over by name in both directions.

Fast path: ``W_i x + b_i`` does not depend on the state, so a layer computes it for all
positions in one matmul and loops over time only for the recurrent ``W_h h + b_h``. That loop
cannot go away: step t needs the state of step t-1, which is what attention (2014) and the
transformer (2017) removed. Each step is two matmuls for all gates at once; ``reference`` (on
cells and layers) runs the equations above gate by gate, one sequence and one step at a time.
Layers are always batch-first. Ragged batches are right-padded and come with
``lengths``: a sequence's state stops changing after its last real token (so the final state
is the state at that token; the reverse direction starts there), and outputs at padding are 0,
as ``torch.nn.utils.rnn.pack_padded_sequence`` gives.

Tests: tests/nn/test_rnn.py (cells and layers equal ``torch.nn.GRU`` / ``torch.nn.LSTM`` on the
same weights: several layers, both directions, initial states, ragged lengths; the fast path
equals the reference).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

State = tuple[torch.Tensor, ...]  # (h,) for the GRU, (h, c) for the LSTM; each (B, H)


# --- the cell equations, written out -------------------------------------------------
def gru_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """One GRU step: x (B, I), h (B, H) -> h' (B, H), gate by gate as in the module docstring."""
    W_ir, W_iz, W_in = w_ih.chunk(3)  # (H, I) each
    W_hr, W_hz, W_hn = w_hh.chunk(3)  # (H, H) each
    b_ir, b_iz, b_in = b_ih.chunk(3)
    b_hr, b_hz, b_hn = b_hh.chunk(3)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    return (1 - z) * n + z * h


def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM step: x (B, I), h and c (B, H) -> h', c' (B, H)."""
    W_ii, W_if, W_ig, W_io = w_ih.chunk(4)  # (H, I) each
    W_hi, W_hf, W_hg, W_ho = w_hh.chunk(4)  # (H, H) each
    b_ii, b_if, b_ig, b_io = b_ih.chunk(4)
    b_hi, b_hf, b_hg, b_ho = b_hh.chunk(4)
    i = torch.sigmoid(x @ W_ii.T + b_ii + h @ W_hi.T + b_hi)
    f = torch.sigmoid(x @ W_if.T + b_if + h @ W_hf.T + b_hf)
    g = torch.tanh(x @ W_ig.T + b_ig + h @ W_hg.T + b_hg)
    o = torch.sigmoid(x @ W_io.T + b_io + h @ W_ho.T + b_ho)
    c = f * c + i * g
    return o * torch.tanh(c), c


# --- the same steps with the input projection gi = W_ih x + b_ih already done ----------
def gru_step(gi: torch.Tensor, state: State, w_hh: torch.Tensor, b_hh: torch.Tensor) -> State:
    """gi (B, 3H), state (h,) -> (h',): one matmul for the three recurrent terms."""
    (h,) = state
    gh = F.linear(h, w_hh, b_hh)  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (n + z * (h - n),)  # = (1 - z) * n + z * h


def lstm_step(gi: torch.Tensor, state: State, w_hh: torch.Tensor, b_hh: torch.Tensor) -> State:
    """gi (B, 4H), state (h, c) -> (h', c')."""
    h, c = state
    i, f, g, o = (gi + F.linear(h, w_hh, b_hh)).chunk(4, dim=1)  # (B, H) each
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def scan(step, gi: torch.Tensor, state: State, w_hh, b_hh, mask: torch.Tensor | None, reverse: bool):
    """Run ``step`` over time. gi (B, T, G*H); mask bool (B, T), True at real tokens, or None.

    Returns the outputs (B, T, H) (0 at padding) and the final state. Where the mask is False
    the state is carried unchanged, so a right-padded sequence ends at its last real token and,
    run in reverse, starts there."""
    T = gi.shape[1]
    outputs = []
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        new = step(gi[:, t], state, w_hh, b_hh)
        if mask is not None:
            real = mask[:, t, None]  # (B, 1)
            new = tuple(torch.where(real, n, s) for n, s in zip(new, state))
        state = new
        outputs.append(state[0])
    if reverse:
        outputs.reverse()
    out = torch.stack(outputs, dim=1)  # (B, T, H)
    if mask is not None:
        out = out * mask[:, :, None]
    return out, state


def lengths_mask(lengths, B: int, T: int, device) -> torch.Tensor | None:
    """Bool (B, T), True at the first ``lengths[b]`` positions; None when there are no lengths."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.shape != (B,) or (lengths < 0).any() or (lengths > T).any():
        raise ValueError(f"lengths must be {B} values in 0..{T}, got {lengths.tolist()}")
    return torch.arange(T, device=device)[None, :] < lengths[:, None]


# --- cells ---------------------------------------------------------------------------
class _Cell(nn.Module):
    gates = 0  # 3 for the GRU, 4 for the LSTM

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        G, H = self.gates, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G * H, H))
        self.bias_ih = nn.Parameter(torch.empty(G * H))
        self.bias_hh = nn.Parameter(torch.empty(G * H))
        bound = 1 / math.sqrt(H)  # torch's initialisation: U(-1/sqrt(H), 1/sqrt(H)) everywhere
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)


class GRUCell(_Cell):
    """One GRU step, ``(x (B, I), h (B, H)) -> h' (B, H)``; names as ``torch.nn.GRUCell``.

    ``forward`` does two matmuls (all gates at once); ``reference`` runs `gru_cell`, gate by gate."""

    gates = 3

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        gi = F.linear(x, self.weight_ih, self.bias_ih)  # (B, 3H)
        return gru_step(gi, (h,), self.weight_hh, self.bias_hh)[0]

    def reference(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class LSTMCell(_Cell):
    """One LSTM step, ``(x (B, I), (h, c)) -> (h', c')``; names as ``torch.nn.LSTMCell``.

    ``forward`` does two matmuls (all gates at once); ``reference`` runs `lstm_cell`, gate by gate."""

    gates = 4

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        gi = F.linear(x, self.weight_ih, self.bias_ih)  # (B, 4H)
        return lstm_step(gi, state, self.weight_hh, self.bias_hh)

    def reference(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        return lstm_cell(x, *state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


# --- layers --------------------------------------------------------------------------
class _Recurrent(nn.Module):
    """Stacked, optionally bidirectional recurrent layers with ``torch.nn.GRU``'s parameter names."""

    gates = 0
    n_state = 0  # tensors in the state: 1 (h) or 2 (h, c)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional = bidirectional
        self.directions = 2 if bidirectional else 1
        G, H = self.gates, hidden_size
        for layer in range(num_layers):
            d_in = input_size if layer == 0 else H * self.directions
            for suffix in ("", "_reverse")[:self.directions]:
                self.register_parameter(f"weight_ih_l{layer}{suffix}", nn.Parameter(torch.empty(G * H, d_in)))
                self.register_parameter(f"weight_hh_l{layer}{suffix}", nn.Parameter(torch.empty(G * H, H)))
                self.register_parameter(f"bias_ih_l{layer}{suffix}", nn.Parameter(torch.empty(G * H)))
                self.register_parameter(f"bias_hh_l{layer}{suffix}", nn.Parameter(torch.empty(G * H)))
        bound = 1 / math.sqrt(H)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def weights(self, layer: int, direction: int) -> tuple[torch.Tensor, ...]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer and direction (1 = reverse)."""
        suffix = "_reverse" if direction else ""
        return tuple(getattr(self, f"{name}_l{layer}{suffix}")
                     for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _initial(self, x: torch.Tensor, state) -> State:
        """The initial state as a tuple of (L*D, B, H) tensors, zeros when not given."""
        if state is None:
            zeros = x.new_zeros(self.num_layers * self.directions, x.shape[0], self.hidden_size)
            return (zeros,) * self.n_state
        return (state,) if isinstance(state, torch.Tensor) else tuple(state)

    def _run(self, step, x: torch.Tensor, state, lengths) -> tuple[torch.Tensor, State]:
        B, T, _ = x.shape
        mask = lengths_mask(lengths, B, T, x.device)  # (B, T) or None
        state = self._initial(x, state)
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for d in range(self.directions):
                w_ih, w_hh, b_ih, b_hh = self.weights(layer, d)
                gi = F.linear(x, w_ih, b_ih)  # (B, T, G*H): every input projection in one matmul
                s0 = tuple(s[layer * self.directions + d] for s in state)  # (B, H) each
                out, final = scan(step, gi, s0, w_hh, b_hh, mask, reverse=d == 1)
                outputs.append(out)
                finals.append(final)
            x = torch.cat(outputs, dim=-1)  # (B, T, D*H): the next layer's input
        return x, tuple(torch.stack(parts) for parts in zip(*finals))  # each (L*D, B, H)

    def _reference(self, cell, x: torch.Tensor, state, lengths) -> tuple[torch.Tensor, State]:
        """Each sequence alone, trimmed to its length, one cell step at a time."""
        B, T, _ = x.shape
        lengths = [T] * B if lengths is None else [int(n) for n in lengths]
        state = self._initial(x, state)
        outputs, finals = x.new_zeros(B, T, self.directions * self.hidden_size), []
        for b in range(B):
            seq = x[b, :lengths[b]]  # (n, I)
            last = []
            for layer in range(self.num_layers):
                outs = []
                for d in range(self.directions):
                    s = tuple(part[layer * self.directions + d, b:b + 1] for part in state)  # (1, H) each
                    ys = []
                    for t in (reversed(range(len(seq))) if d else range(len(seq))):
                        s = cell(seq[t:t + 1], *s, *self.weights(layer, d))
                        s = (s,) if isinstance(s, torch.Tensor) else s
                        ys.append(s[0])
                    ys = ys[::-1] if d else ys
                    outs.append(torch.cat(ys) if ys else seq.new_zeros(0, self.hidden_size))  # (n, H)
                    last.append(s)
                seq = torch.cat(outs, dim=-1)  # (n, D*H)
            outputs[b, :lengths[b]] = seq
            finals.append(last)
        # finals[b][layer * D + d] is a state tuple of (1, H) tensors
        parts = tuple(torch.stack([torch.cat([finals[b][k][i] for b in range(B)])
                                   for k in range(self.num_layers * self.directions)])
                      for i in range(self.n_state))  # each (L*D, B, H)
        return outputs, parts


class GRU(_Recurrent):
    """``torch.nn.GRU(..., batch_first=True)`` written out.

    ``forward(x (B, T, I), h0 (L*D, B, H) or None, lengths (B,) or None)``
    returns ``output (B, T, D*H), h_n (L*D, B, H)``, D = 2 when bidirectional."""

    gates, n_state = 3, 1

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, lengths=None):
        output, (h_n,) = self._run(gru_step, x, h0, lengths)
        return output, h_n

    def reference(self, x: torch.Tensor, h0: torch.Tensor | None = None, lengths=None):
        """The same result from `gru_cell`, one sequence and one step at a time."""
        output, (h_n,) = self._reference(gru_cell, x, h0, lengths)
        return output, h_n


class LSTM(_Recurrent):
    """``torch.nn.LSTM(..., batch_first=True)`` written out.

    ``forward(x (B, T, I), (h0, c0) each (L*D, B, H) or None, lengths (B,) or None)``
    returns ``output (B, T, D*H), (h_n, c_n)``."""

    gates, n_state = 4, 2

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None, lengths=None):
        return self._run(lstm_step, x, state, lengths)

    def reference(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None, lengths=None):
        """The same result from `lstm_cell`, one sequence and one step at a time."""
        return self._reference(lstm_cell, x, state, lengths)
