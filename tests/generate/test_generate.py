"""Generation on the real SmolLM2: streaming, stop strings, seeds, limits, context window."""

import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.generate import GenerationConfig, complete, stream
from llmlab.generate.generate import ContextWindowError, _split_stop


def test_stream_pieces_join_to_the_completion(smollm2_model):
    s = stream(smollm2_model.model, smollm2_model.tokenizer, "The capital of France is",
               GenerationConfig(max_new_tokens=12))
    pieces = list(s)
    c = s.completion
    assert "".join(pieces) == c.text and len(pieces) >= 2
    assert c.text == smollm2_model.tokenizer.decode(c.ids)
    assert c.finish_reason in ("length", "eos") and len(c.ids) <= 12 and "Paris" in c.text


def test_greedy_is_deterministic_and_seeds_reproduce(smollm2_model):
    m, tok = smollm2_model.model, smollm2_model.tokenizer
    prompt = "Once upon a time"
    assert complete(m, tok, prompt, GenerationConfig(max_new_tokens=8)).ids == \
        complete(m, tok, prompt, GenerationConfig(max_new_tokens=8)).ids
    sampled = [complete(m, tok, prompt, GenerationConfig(max_new_tokens=16, temperature=1.0, seed=s)).text
               for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] and sampled[0] != sampled[2]


def test_stop_strings_and_eos(smollm2_model):
    m, tok = smollm2_model.model, smollm2_model.tokenizer
    free = complete(m, tok, "Count: 1, 2, 3,", GenerationConfig(max_new_tokens=12))
    assert " 5" in free.text
    stopped = complete(m, tok, "Count: 1, 2, 3,", GenerationConfig(max_new_tokens=12, stop=[" 5"]))
    assert stopped.finish_reason == "stop" and stopped.text == free.text[: free.text.index(" 5")]
    chat = "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n"
    done = complete(m, tok, chat, GenerationConfig(max_new_tokens=64))
    assert done.finish_reason == "eos" and "<|im_end|>" not in done.text


def test_repetition_penalty_breaks_a_loop(smollm2_model):
    m, tok = smollm2_model.model, smollm2_model.tokenizer
    prompt = "la femme au martyre, la femme au martyre, la femme au martyre,"
    looping = complete(m, tok, prompt, GenerationConfig(max_new_tokens=24))
    assert looping.text.count("martyre") >= 3  # greedy repeats the phrase
    penalised = complete(m, tok, prompt, GenerationConfig(max_new_tokens=24, repetition_penalty=1.3))
    assert penalised.text.count("martyre") < looping.text.count("martyre")
    window = complete(m, tok, prompt, GenerationConfig(max_new_tokens=24, repetition_penalty=1.3,
                                                       repetition_window=1))
    assert window.ids != penalised.ids  # only the last token is penalised: another continuation
    with pytest.raises(LlmlabError, match="repetition_penalty"):
        GenerationConfig(repetition_penalty=0)


def test_split_stop_holds_back_possible_starts():
    assert _split_stop("hello wor", ["world"]) == ("hello ", "wor", False)
    assert _split_stop("hello world!", ["world"]) == ("hello ", "", True)
    assert _split_stop("abc", []) == ("abc", "", False)
    assert _split_stop("ab", ["xyz"]) == ("ab", "", False)


def test_context_window_and_bad_arguments(smollm2_model):
    m, tok = smollm2_model.model, smollm2_model.tokenizer
    with pytest.raises(ContextWindowError, match="8190 tokens; with 10 new tokens that is 8200"):
        stream(m, tok, [200] * 8190, GenerationConfig(max_new_tokens=10))
    with pytest.raises(LlmlabError, match="empty prompt"):
        stream(m, tok, "", GenerationConfig())
    with pytest.raises(LlmlabError, match="top_p"):
        GenerationConfig(top_p=1.5)
    with pytest.raises(LlmlabError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=0)
    for bad in ({"temperature": float("nan")}, {"temperature": float("inf")}, {"repetition_penalty": float("nan")},
                {"seed": -1}, {"seed": 2**64}, {"max_new_tokens": 3.5}, {"temperature": None},
                {"temperature": "0.7"}, {"top_k": 2.0}, {"seed": True}, {"stop": [1]}):
        with pytest.raises(LlmlabError, match=next(iter(bad))):
            GenerationConfig(**bad)
    for bad in ([10**6], [-1], [1, 2.5]):
        with pytest.raises(LlmlabError, match=f"prompt id {bad[-1]!r} is not a token of the model"):
            stream(m, tok, bad, GenerationConfig())
    assert GenerationConfig(stop="London").stop == ["London"]  # one stop string, not its letters
    for bad in (b"The capital", None, torch.tensor(5), torch.tensor([[1, 2]])):  # bytes are not ids
        with pytest.raises(LlmlabError, match="the prompt must be a str or a sequence of token ids"):
            stream(m, tok, bad, GenerationConfig())
    ids = tok.encode("The capital of France is")
    as_list, as_tensor = (complete(m, tok, p, GenerationConfig(max_new_tokens=3)).ids for p in (ids, torch.tensor(ids)))
    assert as_list == as_tensor
    assert GenerationConfig(stop=None).stop == [] and GenerationConfig(stop=(s for s in ["a", "b"])).stop == ["a", "b"]


def test_a_prompt_cache_reads_the_shared_beginning_once(smollm2_model, monkeypatch):
    """Prompts that start alike (instructions, examples) give the same greedy answers with the prefix's
    keys and values computed once; a prompt that does not start with it is read whole."""
    from llmlab.generate import PromptCache, complete

    model, tok = smollm2_model.model, smollm2_model.tokenizer
    head = ("You name the topic of customer messages in three words.\n"
            "Messages: my card never arrived; where is my card\nTopic: Card delivery\n")
    prompts = [tok.encode(head + f"Messages: {m}\nTopic:") for m in
               ("I was charged twice; double payment on my account", "how do I change my PIN; forgot my PIN")]
    n = len(tok.encode(head))
    assert all(p[:n] == prompts[0][:n] for p in prompts)
    config = GenerationConfig(max_new_tokens=8)
    whole = [complete(model, tok, p, config).ids for p in prompts]
    shared = PromptCache(model, prompts[0][:n], max(map(len, prompts)) + 8)
    read = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda ids, **kw: read.append(ids.shape[1]) or forward(ids, **kw))
    for p, expected in zip(prompts, whole):
        read.clear()
        cached = complete(model, tok, p, config, prefix=shared)
        assert read[0] == len(p) - n and cached.ids == expected and cached.prompt_tokens == len(p)
    other = tok.encode("A different beginning. Topic:")
    read.clear()
    complete(model, tok, other, config, prefix=shared)
    assert read[0] == len(other)
    common = PromptCache.common(model, prompts, 8)  # the longest shared beginning ("...\nMessages: " too)
    assert n < len(common.ids) < min(map(len, prompts)) and all(p[:len(common.ids)] == common.ids for p in prompts)
    assert prompts[0][len(common.ids)] != prompts[1][len(common.ids)]
    assert PromptCache.common(model, prompts[:1], 8) is None and PromptCache.common(model, [other, *prompts], 8) is None
