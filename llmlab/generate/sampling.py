"""Choosing the next token from the model's logits.

- greedy (temperature 0): the most likely token.
- temperature T: softmax(logits / T); below 1 sharpens, above 1 flattens.
- top-k: keep only the k most likely tokens.
- top-p (nucleus, Holtzman et al. 2019): keep the smallest set of most likely tokens whose
  probabilities add up to at least p.
- repetition penalty (CTRL, Keskar et al. 2019): before any of the above, the logit of every
  token the answer has used lately is divided by the penalty when positive and multiplied by it
  when negative, so a small model is less likely to loop on one phrase (which tokens count is
  generate.py's choice: the answer's last 64, not the prompt, no special tokens).

Sampling draws from a seeded ``torch.Generator``, so the same seed gives the same text.
Tests: tests/generate/test_sampling.py.
"""

import torch


def next_token(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None,
               top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Token ids (B,) from logits (B, vocab)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float()
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature  # <= 0: a tiny T gives -inf, never nan
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # mass before this token already >= p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def penalize_repeats(logits: torch.Tensor, recent: torch.Tensor, penalty: float) -> torch.Tensor:
    """Logits (B, vocab) with CTRL's repetition penalty on the token ids ``recent`` (B, n): positive
    logits divided by ``penalty``, negative ones multiplied (a token seen twice is penalised once)."""
    if penalty == 1.0 or recent.shape[-1] == 0:
        return logits
    seen = logits.gather(-1, recent)  # (B, n)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(-1, recent, seen)
