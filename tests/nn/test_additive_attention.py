"""Additive (Bahdanau 2014) attention against its equation written out as a loop, with padding."""

import torch

from llmlab.nn.attention import AdditiveAttention
from llmlab.nn.positions import sinusoidal_positions

torch.manual_seed(0)


def loop_attention(attn: AdditiveAttention, s, h, lengths):
    """e_j = v . tanh(W_s s + W_h h_j + b) for each real j, softmax, weighted sum; one row at a time."""
    W_s, W_h, b, v = attn.query_proj.weight, attn.key_proj.weight, attn.key_proj.bias, attn.v.weight[0]
    contexts, weights = [], []
    for i, n in enumerate(lengths):
        e = torch.stack([v @ torch.tanh(W_s @ s[i] + W_h @ h[i, j] + b) for j in range(n)])
        a = torch.exp(e - e.max()) / torch.exp(e - e.max()).sum()
        contexts.append(sum(a[j] * h[i, j] for j in range(n)))
        weights.append(torch.cat([a, torch.zeros(h.shape[1] - n)]))
    return torch.stack(contexts), torch.stack(weights)


def test_equals_written_out_loop_and_padding_gets_zero_weight():
    attn = AdditiveAttention(query_dim=5, key_dim=6, attn_dim=7)
    s, h = torch.randn(3, 5), torch.randn(3, 4, 6)
    lengths = [4, 2, 1]
    mask = torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]  # (B, S)
    context, weights = attn(s, h, mask)
    ref_context, ref_weights = loop_attention(attn, s, h, lengths)
    torch.testing.assert_close(context, ref_context, rtol=0, atol=1e-6)
    torch.testing.assert_close(weights, ref_weights, rtol=0, atol=1e-6)
    assert (weights[~mask] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    # whatever sits at the padded positions changes nothing
    h2 = h.clone()
    h2[~mask] = 100.0
    context2, weights2 = attn(s, h2, mask, projected_keys=attn.project_keys(h2))
    torch.testing.assert_close(context2, context, rtol=0, atol=1e-6)
    torch.testing.assert_close(weights2, weights, rtol=0, atol=0)


def test_no_mask_attends_everywhere():
    attn = AdditiveAttention(4, 4, 8)
    s, h = torch.randn(2, 4), torch.randn(2, 5, 4)
    context, weights = attn(s, h)
    ref_context, ref_weights = loop_attention(attn, s, h, [5, 5])
    torch.testing.assert_close(context, ref_context, rtol=0, atol=1e-6)
    assert (weights > 0).all()


def test_sinusoidal_positions_equation():
    pe = sinusoidal_positions(10, 8)
    pos, i = 7, 2
    angle = torch.tensor(pos / 10000 ** (2 * i / 8))
    torch.testing.assert_close(pe[pos, 2 * i], angle.sin())
    torch.testing.assert_close(pe[pos, 2 * i + 1], angle.cos())
    assert pe.shape == (10, 8) and (pe[0, 0::2] == 0).all() and (pe[0, 1::2] == 1).all()
