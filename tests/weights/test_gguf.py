"""GGUF weights: dequantization vs the `gguf` package, and SmolLM2 in our decoder vs HF
transformers on the same file (final-position logits and greedy continuations)."""

import numpy as np
import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.generate import ChatTemplate, GenerationConfig, complete
from llmlab.packages import smollm2_gguf
from llmlab.weights.gguf import _DEQUANTIZE, GGML_TYPES, GGUFFile, load_gguf
from tests.conftest import TEST_DATA


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1", "Q8_0", "F16", "BF16", "F32"])
def test_dequantize_matches_the_gguf_package(kind):
    from gguf import GGMLQuantizationType, quants

    qtype = GGMLQuantizationType[kind]
    values = np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32)
    packed = quants.quantize(values, qtype)
    expected = quants.dequantize(packed, qtype)
    ours = _DEQUANTIZE[kind](np.ascontiguousarray(packed).view(np.uint8).reshape(-1), values.size)
    np.testing.assert_array_equal(ours.reshape(expected.shape), expected)


def test_real_tensors_match_the_gguf_reader():
    import gguf

    ours = GGUFFile(smollm2_gguf())
    reader = gguf.GGUFReader(smollm2_gguf())
    for t in reader.tensors:
        if t.name in ("token_embd.weight", "blk.7.ffn_down.weight", "blk.0.attn_norm.weight"):
            expected = gguf.quants.dequantize(t.data, t.tensor_type)
            got = ours.dequantize(t.name).numpy()
            np.testing.assert_array_equal(got, expected.reshape(got.shape))
    assert {GGML_TYPES[i.ggml_type][0] for i in ours.tensors.values()} == {"Q4_1", "Q8_0", "F32"}


def test_config_from_metadata(smollm2_model):
    cfg = smollm2_model.config
    assert (cfg.n_layers, cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim) == (30, 576, 9, 3, 64)
    assert (cfg.ffn_dim, cfg.max_seq_len, cfg.rope_theta, cfg.vocab_size) == (1536, 8192, 100000.0, 49152)
    assert cfg.tie_embeddings and smollm2_model.model.lm_head.weight is smollm2_model.model.embed_tokens.weight
    assert smollm2_model.model.num_parameters() == 134_515_008
    assert "<|im_start|>" in smollm2_model.chat_template


def _prompts(tokenizer, template):
    long_text = (TEST_DATA / "sample_en.txt").read_text()[:5000]
    chat = template.render([{"role": "user", "content": "Write a haiku about tokenizers."}])
    prompts = {
        "english": "The three most important inventions of the twentieth century were",
        "chinese": "我喜欢自然语言处理，因为它可以",
        "code": "def quicksort(items):\n    if len(items) <= 1:\n        return items\n",
        "chat": chat,
        "long": long_text,
    }
    assert len(tokenizer.encode(prompts["long"])) > 1000
    return prompts


def test_final_logits_match_hf_transformers(smollm2_model, hf_smollm2):
    tok = smollm2_model.tokenizer
    template = ChatTemplate(smollm2_model.chat_template)
    with torch.inference_mode():
        for name, prompt in _prompts(tok, template).items():
            ids = torch.tensor([tok.encode(prompt)])
            ours = smollm2_model.model(ids, last_only=True)[0, -1]
            theirs = hf_smollm2(ids).logits[0, -1]
            assert (ours - theirs).abs().max().item() <= 1e-3, name


@pytest.mark.parametrize("name", ["english", "chat"])
def test_greedy_64_tokens_identical_to_hf(smollm2_model, hf_smollm2, name):
    tok = smollm2_model.tokenizer
    prompt = _prompts(tok, ChatTemplate(smollm2_model.chat_template))[name]
    ids = tok.encode(prompt)
    ours = complete(smollm2_model.model, tok, ids, GenerationConfig(max_new_tokens=64))
    with torch.inference_mode():
        out = hf_smollm2.generate(torch.tensor([ids]), max_new_tokens=64, do_sample=False,
                                  attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    theirs = out[0, len(ids):].tolist()
    mine = ours.ids + ([tok.special_tokens[tok.eos_token]] if ours.finish_reason == "eos" else [])
    assert mine == theirs[: len(mine)] and (ours.finish_reason == "eos" or len(mine) == 64)


def test_bad_files(tmp_path):
    cut = tmp_path / "cut.gguf"
    with open(smollm2_gguf(), "rb") as f:
        cut.write_bytes(f.read(20_000_000))  # header intact, tensor data cut short
    with pytest.raises(LlmlabError, match="truncated"):
        load_gguf(cut)
    with pytest.raises(LlmlabError, match="no such GGUF file"):
        load_gguf(tmp_path / "missing.gguf")
    f = GGUFFile(smollm2_gguf())
    f.tensors["blk.0.ffn_up.weight"].ggml_type = 14
    with pytest.raises(LlmlabError, match="Q6_K, which is not supported"):
        f.dequantize("blk.0.ffn_up.weight")


def test_unsupported_architecture(tmp_path):
    import gguf

    path = tmp_path / "gpt2.gguf"
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(LlmlabError, match="architecture 'gpt2' is not supported"):
        load_gguf(path)


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_quantized_paths_agree_with_float32(smollm2_model, precision, request):
    from llmlab.weights.registry import load_decoder

    int8 = request.getfixturevalue("smollm2_int4") if precision == "int4" else load_decoder("smollm2", precision="int8")
    tok = smollm2_model.tokenizer
    agree = total = 0
    with torch.inference_mode():
        for prompt in ("The capital of France is", "def add(a, b):\n    return", "我喜欢"):
            ids = torch.tensor([tok.encode(prompt)])
            a, b = smollm2_model.model(ids), int8.model(ids)
            agree += (a.argmax(-1) == b.argmax(-1)).sum().item()
            total += ids.shape[1]
            assert torch.nn.functional.cosine_similarity(a[0, -1], b[0, -1], dim=0) > 0.99
    assert agree / total > 0.9
    assert "Paris" in complete(int8.model, tok, "The capital of France is", GenerationConfig(max_new_tokens=4)).text
    assert int8.model.num_parameters() == smollm2_model.model.num_parameters()
