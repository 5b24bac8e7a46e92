"""Scoring continuations (`continuation_logprobs`): every option read side by side in one pass
equals reading prompt + option as one sequence, on tiny float32 models of both decoder families
and on SmolLM2 int4 with float32 scores."""

import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.generate import PromptCache, continuation_logprobs
from llmlab.generate.generate import continuation_room
from llmlab.models.decoder import Decoder, DecoderConfig


def _whole(model, prompt, option) -> float:
    """log P(option | prompt) the plain way: one forward over prompt + option."""
    with torch.no_grad():
        logprobs = model(torch.tensor([prompt + option]))[0].log_softmax(-1)
    return sum(float(logprobs[len(prompt) - 1 + k, t]) for k, t in enumerate(option))


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_options_side_by_side_equal_each_read_after_the_prompt(family):
    torch.manual_seed(0)
    config = DecoderConfig(family=family, vocab_size=97, dim=32, n_layers=2, n_heads=4,
                           n_kv_heads=2 if family == "llama" else 4, ffn_dim=64, max_seq_len=64)
    model = Decoder(config).eval()
    prompt = torch.randint(0, 97, (11,)).tolist()
    options = [[5], [7, 8, 9], [7, 8, 10], [3, 3], [60, 1, 2, 4, 90, 91]]  # shared beginnings, repeats, one token
    expected = torch.tensor([_whole(model, prompt, o) for o in options])
    for budget in (256, 4, 1):  # one pass, a few, one option a pass
        torch.testing.assert_close(continuation_logprobs(model, prompt, options, budget=budget), expected,
                                   rtol=1e-6, atol=1e-5)
    assert continuation_room(options) == 2 + 2 + 1 + 5 and continuation_room(options, budget=4) == 5
    assert continuation_room([[1], [2]]) == 0
    shared = PromptCache(model, prompt[:6], len(prompt) + continuation_room(options))
    torch.testing.assert_close(continuation_logprobs(model, prompt, options, prefix=shared), expected,
                               rtol=1e-6, atol=1e-5)
    again = continuation_logprobs(model, prompt[:6] + [4, 4], options, prefix=shared)  # the prefix is reused as it was
    torch.testing.assert_close(again, torch.tensor([_whole(model, prompt[:6] + [4, 4], o) for o in options]),
                               rtol=1e-6, atol=1e-5)
    arrays = continuation_logprobs(model, torch.tensor(prompt), (torch.tensor([5]), (7, 8, 9)))  # tensors, tuples
    torch.testing.assert_close(arrays, expected[:2], rtol=1e-6, atol=1e-5)
    with pytest.raises(LlmlabError, match="sequence of token ids"):
        continuation_logprobs(model, "text", [[1]])
    with pytest.raises(LlmlabError, match="at least one option"):
        continuation_logprobs(model, prompt, [[1], []])
    with pytest.raises(LlmlabError, match="token ids of the model"):
        continuation_logprobs(model, prompt, [[97]])
    with pytest.raises(LlmlabError, match="token ids of the model"):
        continuation_logprobs(model, [], [[1]])


def test_smollm2_int4_scores_are_the_float32_ones(smollm2_int4):
    from llmlab.nn.quantized import float_weights

    model, tok = smollm2_int4.model, smollm2_int4.tokenizer
    prompt = tok.encode("<|im_start|>user\nIs this review positive or negative?\nText: a warm, funny film<|im_end|>\n"
                        "<|im_start|>assistant\n")
    options = [tok.encode(w) + [tok.special_tokens["<|im_end|>"]] for w in ("positive", "negative", "mixed feelings")]
    with float_weights(model, every_call=True):
        scores = continuation_logprobs(model, prompt, options)
        expected = torch.tensor([_whole(model, prompt, o) for o in options])  # whole sequences: the float32 path
    torch.testing.assert_close(scores, expected, rtol=0, atol=1e-4)
    assert scores.argmax() == 0
    kernels = continuation_logprobs(model, prompt, options)  # outside: the few-row kernels' bfloat16 logits
    assert (kernels - expected).abs().max() > 1e-3
