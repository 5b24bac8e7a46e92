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


def test_repetition_penalty_is_transformers_on_the_answers_recent_ordinary_tokens(smollm2):
    """Greedy with penalty 1.5 and window 4, step by step the plain way: a forward over the whole sequence,
    HF transformers' RepetitionPenaltyLogitsProcessor given only the answer's last 4 tokens less the special
    ones (not the prompt's), then argmax. Tiny random decoders over SmolLM2's first 64 ids (17 special
    tokens, then bytes) loop without the penalty, and pick special tokens now and then."""
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    from llmlab.models.decoder import Decoder, DecoderConfig

    special = set(smollm2.special_tokens.values())
    eos = smollm2.special_tokens[smollm2.eos_token]
    prompt = [1, 40, 41, 42, 43, 40, 41, 2, 1, 44]  # special tokens (1, 2) and repeats in the prompt
    penalty, window, n = 1.5, 4, 24
    config = GenerationConfig(max_new_tokens=n, repetition_penalty=penalty, repetition_window=window)
    other_rules = {"the whole answer": {"window": None}, "the last 3": {"window": 3}, "the last 5": {"window": 5},
                   "the prompt too": {"with_prompt": True}, "special tokens too": {"with_special": True}}

    def greedy(model, window=window, with_prompt=False, with_special=False):
        processor, answer = RepetitionPenaltyLogitsProcessor(penalty), []
        for _ in range(n):
            with torch.no_grad():
                logits = model(torch.tensor([prompt + answer]))[:, -1]
            recent = answer[-window:] if window else list(answer)
            recent = [t for t in recent if with_special or t not in special]
            recent = (prompt if with_prompt else []) + recent
            token = int(processor(torch.tensor([recent], dtype=torch.long), logits.clone()).argmax(-1))
            if token == eos:
                break
            answer.append(token)
        return answer

    told_apart, generated = set(), set()
    for seed in (22, 30):
        torch.manual_seed(seed)
        model = Decoder(DecoderConfig(family="llama", vocab_size=64, dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
                                      ffn_dim=64, max_seq_len=64, tie_embeddings=False)).eval()
        expected = greedy(model)
        assert complete(model, smollm2, prompt, config).ids == expected
        unpenalised = complete(model, smollm2, prompt, GenerationConfig(max_new_tokens=n)).ids
        assert unpenalised != expected and len(set(unpenalised[-6:])) == 1  # without it: one token over and over
        generated |= set(expected)
        told_apart |= {name for name, rule in other_rules.items() if greedy(model, **rule) != expected}
    assert generated & special  # special tokens were generated (and are not penalised)
    assert told_apart == set(other_rules)  # each other rule chooses other tokens somewhere here
