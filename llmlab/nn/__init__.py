"""Neural network building blocks (attention, positions, norms, feed-forward, recurrent layers),
each a small nn.Module with its equation in the docstring."""

from llmlab.nn.attention import AdditiveAttention, CrossAttention
from llmlab.nn.positions import sinusoidal_positions
from llmlab.nn.rnn import GRU, LSTM, GRUCell, LSTMCell

__all__ = ["GRU", "LSTM", "AdditiveAttention", "CrossAttention", "GRUCell", "LSTMCell", "sinusoidal_positions"]
