"""Next-token choice: greedy, temperature, top-k, top-p, seeds, repetition penalty."""

import torch

from llmlab.generate.sampling import next_token, penalize_repeats

LOGITS = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])


def test_greedy_is_argmax():
    assert next_token(LOGITS).tolist() == [0]
    assert next_token(torch.tensor([[0.0, 3.0], [5.0, 1.0]])).tolist() == [1, 0]


def draws(n=4000, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    counts = torch.zeros(5)
    for _ in range(n):
        counts[next_token(LOGITS, generator=g, **kw)] += 1
    return counts / n


def test_temperature_one_follows_softmax():
    freq = draws(temperature=1.0)
    assert (freq - LOGITS.softmax(-1)[0]).abs().max() < 0.03


def test_low_temperature_sharpens_high_flattens():
    assert draws(temperature=0.3)[0] > 0.9
    assert draws(temperature=5.0)[0] < 0.3


def test_top_k_keeps_k_most_likely():
    freq = draws(temperature=1.0, top_k=2)
    assert freq[2:].sum() == 0 and freq[0] > freq[1] > 0


def test_top_p_keeps_the_nucleus():
    p = LOGITS.softmax(-1)[0]  # about [0.53, 0.20, 0.12, 0.07, 0.03]
    freq = draws(temperature=1.0, top_p=0.7)  # 0.53 < 0.7, 0.53 + 0.20 >= 0.7: two tokens
    assert freq[2:].sum() == 0 and abs(freq[0] - p[0] / (p[0] + p[1])) < 0.03
    assert draws(temperature=1.0, top_p=0.01)[0] == 1.0  # always at least the top token


def test_same_seed_same_draws():
    assert torch.equal(draws(200, seed=7, temperature=1.0), draws(200, seed=7, temperature=1.0))
    assert not torch.equal(draws(200, seed=7, temperature=1.0), draws(200, seed=8, temperature=1.0))


def test_repetition_penalty_matches_transformers():
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    torch.manual_seed(0)
    logits = torch.randn(3, 50) * 4  # positive and negative logits
    recent = torch.randint(0, 50, (3, 20))  # with repeats
    for penalty in (1.3, 0.8):
        expected = RepetitionPenaltyLogitsProcessor(penalty)(recent, logits.clone())
        torch.testing.assert_close(penalize_repeats(logits, recent, penalty), expected, rtol=0, atol=0)
    assert torch.equal(penalize_repeats(logits, recent, 1.0), logits)
    # the greedy choice moves off a token just used when the runner-up is close
    assert next_token(penalize_repeats(LOGITS, torch.tensor([[0]]), 2.5)).tolist() == [1]  # 2 / 2.5 < 1


def test_a_tiny_temperature_is_greedy_not_nan():
    g = torch.Generator().manual_seed(0)
    for t in (1e-45, 1e-30, 1e-8):  # logits / T overflows float32 unless the top logit is taken off first
        assert next_token(LOGITS * 50, temperature=t, generator=g).tolist() == [0]
