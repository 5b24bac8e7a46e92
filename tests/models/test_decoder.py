"""Decoder on tiny random configs against HF transformers (Llama and GPT-2), with and
without the KV cache, batched with left padding."""

import pytest
import torch

from llmlab.models.decoder import Decoder, DecoderConfig
from llmlab.nn.attention import reference_attention, sdpa_attention
from llmlab.weights.hf import gpt2_state_from_hf, llama_state_from_hf

torch.manual_seed(0)


@pytest.fixture(scope="module")
def llama_pair():
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_cfg = LlamaConfig(vocab_size=97, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True)
    hf = LlamaForCausalLM(hf_cfg).eval()
    cfg = DecoderConfig(family="llama", vocab_size=97, dim=48, n_layers=2, n_heads=6, n_kv_heads=2, ffn_dim=96,
                        max_seq_len=64, norm_eps=1e-5, rope_theta=10000.0)
    ours = Decoder(cfg).eval()
    ours.load_state_dict(llama_state_from_hf(hf.state_dict()))
    return ours, hf


@pytest.fixture(scope="module")
def gpt2_pair():
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(vocab_size=97, n_embd=48, n_layer=2, n_head=4, n_positions=64, layer_norm_epsilon=1e-5)
    hf = GPT2LMHeadModel(hf_cfg).eval()
    cfg = DecoderConfig(family="gpt2", vocab_size=97, dim=48, n_layers=2, n_heads=4, max_seq_len=64, norm_eps=1e-5)
    ours = Decoder(cfg).eval()
    ours.load_state_dict(gpt2_state_from_hf(hf.state_dict()))
    return ours, hf


@pytest.mark.parametrize("pair", ["llama_pair", "gpt2_pair"])
def test_logits_match_transformers(pair, request):
    ours, hf = request.getfixturevalue(pair)
    ids = torch.randint(0, 97, (2, 17))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pair", ["llama_pair", "gpt2_pair"])
def test_cache_generation_equals_recomputing(pair, request):
    ours, _ = request.getfixturevalue(pair)
    ids = torch.randint(0, 97, (1, 5))
    with torch.no_grad():
        plain = ids.clone()
        for _ in range(8):  # reference path: run the whole sequence again for every token
            plain = torch.cat([plain, ours(plain)[:, -1:].argmax(-1)], dim=1)
        cache = ours.new_cache(1, 13)
        logits = ours(ids, cache=cache, last_only=True)
        cached = ids.clone()
        for _ in range(8):
            nxt = logits[:, -1:].argmax(-1)
            cached = torch.cat([cached, nxt], dim=1)
            logits = ours(nxt, cache=cache)
    assert torch.equal(plain, cached)


@pytest.mark.parametrize("pair", ["llama_pair", "gpt2_pair"])
def test_left_padded_batch_equals_single_prompts(pair, request):
    ours, _ = request.getfixturevalue(pair)
    prompts = [torch.randint(1, 97, (n,)) for n in (3, 7, 5)]
    width = max(len(p) for p in prompts)
    ids = torch.zeros(3, width, dtype=torch.long)
    mask = torch.zeros(3, width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = p, 1
    with torch.no_grad():
        cache = ours.new_cache(3, width + 1)
        batch = ours(ids, attention_mask=mask, cache=cache, last_only=True)[:, -1]
        nxt = batch.argmax(-1, keepdim=True)
        step = ours(nxt, attention_mask=torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], 1), cache=cache)[:, -1]
        for i, p in enumerate(prompts):
            single = ours(p[None])[0, -1]
            torch.testing.assert_close(batch[i], single, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(step[i], ours(torch.cat([p, nxt[i]])[None])[0, -1], rtol=1e-4, atol=1e-5)


def test_reference_attention_path_equals_sdpa(llama_pair):
    ours, _ = llama_pair
    ids = torch.randint(0, 97, (1, 9))
    with torch.no_grad():
        fast = ours(ids)
        for layer in ours.layers:
            layer.self_attn.attend = reference_attention
        slow = ours(ids)
        for layer in ours.layers:
            layer.self_attn.attend = sdpa_attention
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


def test_context_window_is_enforced(llama_pair):
    ours, _ = llama_pair
    with pytest.raises(ValueError, match="exceed the context window of 64"):
        ours(torch.zeros(1, 65, dtype=torch.long))


def test_every_hf_key_maps_both_ways(llama_pair, gpt2_pair):
    for ours, hf in (llama_pair, gpt2_pair):
        mapped = (llama_state_from_hf if ours.config.family == "llama" else gpt2_state_from_hf)(hf.state_dict())
        assert set(mapped) == set(ours.state_dict())


def test_hf_folder_loads_through_the_registry(llama_pair, tmp_path):
    from llmlab.tokenize import train_bpe
    from llmlab.weights.registry import load_decoder

    _, hf = llama_pair
    hf.save_pretrained(tmp_path)  # config.json + model.safetensors
    train_bpe(["hello world " * 50], vocab_size=260, progress=False).save(tmp_path)
    bundle = load_decoder(tmp_path)
    ids = torch.randint(0, 97, (1, 11))
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(ids), hf(ids).logits, rtol=1e-4, atol=1e-5)
    assert bundle.tokenizer.vocab_size == 260 and bundle.config.n_kv_heads == 2


def test_malformed_tokenizer_config_is_one_clear_error(llama_pair, tmp_path):
    from llmlab.errors import LlmlabError
    from llmlab.tokenize import train_bpe
    from llmlab.weights.registry import load_decoder

    llama_pair[1].save_pretrained(tmp_path)
    train_bpe(["hello world " * 50], vocab_size=260, progress=False).save(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(LlmlabError, match="tokenizer_config.json: invalid JSON"):
        load_decoder(tmp_path)
