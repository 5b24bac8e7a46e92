"""BertModel and SentenceEncoder against transformers and sentence-transformers.

Tier 1: tiny random configs against ``transformers.BertModel`` (same weights, copied through
our rename table), with padding; SDPA equals the plain softmax reference. Tier 2: the real
all-MiniLM-L6-v2 against ``sentence_transformers.SentenceTransformer``: 500 sentences (Mandarin,
emoji, over-long ones), STS-B dev Spearman. Plus the name table both ways and the errors.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.torch import save_file

from llmlab.errors import LlmlabError
from llmlab.models.encoder import BertConfig, BertModel, pool
from llmlab.packages import minilm_dir
from llmlab.weights.hf import (
    BERT_IGNORED,
    BERT_RENAMES,
    load_bert,
    load_sentence_encoder,
    load_state,
    read_hf_folder,
    rename,
)
from tests.conftest import TEST_DATA
from tests.tokenize.corpus import EDGE_TEXTS, SPECIAL_TEXTS

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=40, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu", pad_token_id=0)


# --- tier 1: tiny random BERT vs transformers --------------------------------------------------
def tiny_hf(model_class=transformers.BertModel, attn="eager", **kw):
    torch.manual_seed(0)
    hf_cfg = transformers.BertConfig(**TINY, attn_implementation=attn)
    hf = model_class(hf_cfg, **kw).eval()
    with torch.no_grad():
        for p in hf.parameters():  # random everywhere, LayerNorm gains and biases included
            p.normal_(0.0, 0.3)
    return hf


def padded_batch(lengths=(11, 6, 1, 3), T=11, vocab=99):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, vocab, (len(lengths), T), generator=g)
    mask = (torch.arange(T) < torch.tensor(lengths)[:, None]).long()  # (B, T)
    types = torch.randint(0, 2, (len(lengths), T), generator=g)
    return ids * mask, mask, types


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_tiny_bert_equals_transformers(attn):
    hf = tiny_hf(add_pooling_layer=False, attn=attn)
    ours = BertModel(BertConfig.from_hf_config(hf.config.to_dict())).eval()
    load_state(ours, hf.state_dict(), BERT_RENAMES, BERT_IGNORED, "tiny")
    ids, mask, types = padded_batch()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = ours(ids, mask, types)
        ref = ours(ids, mask, types, reference=True)
    real = mask.bool()  # padding positions carry no meaning; compare the tokens
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(ref[real], got[real], atol=1e-5, rtol=0)
    assert got.shape == (4, 11, 32)


def test_sdpa_equals_reference_everywhere():
    torch.manual_seed(2)
    model = BertModel(BertConfig(**TINY)).eval()
    ids, mask, types = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(model(ids, mask, types), model(ids, mask, types, reference=True),
                                   atol=1e-5, rtol=0)
        # no mask means every position is a token
        torch.testing.assert_close(model(ids), model(ids, torch.ones_like(ids)))
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


def test_folder_written_by_transformers_loads(tmp_path):
    # BertForMaskedLM keeps the encoder under "bert." and adds "cls." heads: both handled by the table
    hf = tiny_hf(transformers.BertForMaskedLM)
    hf.save_pretrained(tmp_path)
    ours, cfg = load_bert(tmp_path)
    assert cfg.head_dim == 8 and not ours.training
    ids, mask, types = padded_batch()
    with torch.no_grad():
        expected = hf.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = ours(ids, mask, types)
    torch.testing.assert_close(got[mask.bool()], expected[mask.bool()], atol=1e-5, rtol=0)

    # a plain BERT folder is a sentence encoder too: mean pooling, no normalisation, 40 positions
    (tmp_path / "vocab.txt").write_text("".join(f"{t}\n" for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"]))
    enc = load_sentence_encoder(tmp_path)
    assert enc.pooling == ("mean",) and not enc.normalize and enc.max_seq_length == 40 and enc.dim == 32
    vectors = enc.encode(["a b a", "", "b " * 100])
    assert vectors.shape == (3, 32) and vectors.dtype == torch.float32 and enc.truncated == 1
    with torch.no_grad():
        hidden = ours(torch.tensor([[2, 4, 5, 4, 3]]))
    torch.testing.assert_close(vectors[0], hidden[0].mean(0))


def test_rename_table_handles_tensorflow_names():
    names = ["bert.embeddings.LayerNorm.gamma", "bert.encoder.layer.0.output.LayerNorm.beta",
             "bert.pooler.dense.weight", "cls.predictions.bias", "embeddings.position_ids"]
    mapping, skipped = rename(names, BERT_RENAMES, BERT_IGNORED)
    assert mapping == {"bert.embeddings.LayerNorm.gamma": "embeddings.LayerNorm.weight",
                       "bert.encoder.layer.0.output.LayerNorm.beta": "encoder.layer.0.output.LayerNorm.bias"}
    assert skipped == names[2:]


def test_pool_modes_by_hand():
    hidden = torch.tensor([[[1.0, -1.0], [3.0, 5.0], [100.0, 100.0]]])  # (1, 3, 2); last position is padding
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, ("cls",)).tolist() == [[1.0, -1.0]]
    assert pool(hidden, mask, ("max",)).tolist() == [[3.0, 5.0]]
    assert pool(hidden, mask, ("mean",)).tolist() == [[2.0, 2.0]]
    assert pool(hidden, mask, ("cls", "mean")).shape == (1, 4)


# --- tier 2: all-MiniLM-L6-v2 vs sentence-transformers -----------------------------------------
@pytest.fixture(scope="module")
def ours():
    return load_sentence_encoder(minilm_dir())


@pytest.fixture(scope="module")
def oracle():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir()), device="cpu")


def test_every_minilm_tensor_maps_both_ways():
    folder = minilm_dir()
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        hf_names = list(f.keys())
    mapping, skipped = rename(hf_names, BERT_RENAMES, BERT_IGNORED)
    config = json.loads((folder / "config.json").read_text())
    ours = set(BertModel(BertConfig.from_hf_config(config)).state_dict())
    assert sorted(skipped) == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
    assert set(mapping.values()) == ours  # every parameter of ours is loaded ...
    assert len(mapping) == len(ours) == len(hf_names) - 3  # ... each from exactly one HF tensor


def sentences_500() -> list[str]:
    lines = [line for line in (TEST_DATA / "sample_en.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    long_texts = [" ".join(lines[i:i + 60]) for i in (0, 300, 600)]  # ~500 tokens each
    long_texts.append("我喜欢自然语言处理。今天天气很好！👍🏽 " * 40)
    short = [t for _, t in EDGE_TEXTS + SPECIAL_TEXTS["minilm"]] + lines[-4:]  # Mandarin lines close the file
    pairs = [f"{a} {b}" for a, b in zip(lines[0:400:2], lines[1:400:2])]  # two lines: longer sentences
    texts = long_texts + short + pairs + lines[400:]
    return texts[:500]


def test_minilm_equals_sentence_transformers(ours, oracle):
    texts = sentences_500()
    assert len(texts) == 500 and any("😀" in t or "👍" in t for t in texts) and any("我" in t for t in texts)
    before = ours.truncated
    got = ours.encode(texts, batch_size=32)
    expected = torch.from_numpy(oracle.encode(texts, batch_size=32))
    assert ours.truncated - before == 4  # the four long texts were cut to 256 tokens
    assert got.shape == expected.shape == (500, 384) and got.dtype == torch.float32
    cosine = F.cosine_similarity(got, expected)
    worst = int(cosine.argmin())
    assert cosine.min() >= 0.99999, f"text {worst} {texts[worst][:60]!r}: cosine {cosine[worst]:.7f}"
    torch.testing.assert_close(got.norm(dim=1), torch.ones(500))  # the Normalize module


def test_batching_and_order_do_not_change_vectors(ours):
    texts = ["short", "a much longer sentence about the river bank and money", "", "mid length text"]
    one_by_one = torch.cat([ours.encode([t]) for t in texts])
    torch.testing.assert_close(ours.encode(texts, batch_size=2), one_by_one, atol=1e-6, rtol=0)
    assert ours.encode([]).shape == (0, ours.dim) and ours.dim == 384
    # batches pad to a few lengths (a multiple of 8, of 32 past 64 tokens): a kernel per shape, not per length
    for length, padded in ((5, 8), (64, 64), (65, 96), (300, 320)):
        ids, mask = ours._batch([[7] * length, [7] * 3])
        assert ids.shape == mask.shape == (2, padded) and mask.sum(1).tolist() == [length, 3]
    limit = ours.bert.config.max_position_embeddings
    try:  # a model of 300 positions (our own checkpoints' block size): padded to 300, not 320
        ours.bert.config.max_position_embeddings = 300
        assert ours._batch([[7] * 290])[0].shape == (1, 300)
    finally:
        ours.bert.config.max_position_embeddings = limit
    for bad in (0, 2.5, "8", None):
        with pytest.raises(LlmlabError, match="batch_size must be a whole number of at least 1"):
            ours.encode(texts, batch_size=bad)


def test_bf16_precision_keeps_the_vectors():
    """The bf16 encoder (fast on AMX CPUs) stays within cosine 0.999 of fp32; it is a separate copy."""
    from llmlab.weights.registry import load_encoder

    fp32, bf16 = load_encoder("minilm"), load_encoder("minilm", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    texts = sentences_500()[:64]
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert b.dtype == torch.float32 and F.cosine_similarity(a, b).min() >= 0.999
    assert load_encoder("minilm", precision="auto").precision in ("fp32", "bf16")
    with pytest.raises(LlmlabError, match="precision"):
        load_encoder("minilm", precision="int3")


def read_stsb(path: Path) -> tuple[list[float], list[str], list[str]]:
    """Gold scores and sentence pairs of an STS-B file: tab-separated, no quoting (see its SOURCE.md)."""
    scores, first, second = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")  # genre, file, year, id, score, sentence1, sentence2[, extra fields]
        scores.append(float(fields[4]))
        first.append(fields[5])
        second.append(fields[6])
    return scores, first, second


@pytest.mark.slow
def test_stsb_dev_spearman_matches(ours, oracle, shared_data):
    from scipy.stats import spearmanr

    path = shared_data / "stsb" / "sts-dev.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    gold, a, b = read_stsb(path)
    assert len(gold) == 1500

    def spearman(encode) -> float:
        va, vb = encode(a), encode(b)
        return spearmanr(F.cosine_similarity(va, vb).numpy(), gold).statistic

    ours_rho = spearman(lambda s: ours.encode(s, batch_size=64))
    their_rho = spearman(lambda s: torch.from_numpy(oracle.encode(s, batch_size=64)))
    assert abs(ours_rho - their_rho) < 5e-5, (ours_rho, their_rho)
    assert ours_rho > 0.8  # all-MiniLM-L6-v2 scores about 0.87 on STS-B dev


def test_token_vectors_are_contextual(ours):
    def bank(sentence: str) -> torch.Tensor:
        tokens, vectors = ours.token_embeddings(sentence)
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(tokens) == vectors.shape[0]
        return vectors[tokens.index("bank")]

    river, money = bank("I sat on the river bank"), bank("I deposited money at the bank")
    assert F.cosine_similarity(river, money, dim=0) < 0.9
    assert torch.equal(river, bank("I sat on the river bank"))
    assert ours.token_embeddings("")[0] == ["[CLS]", "[SEP]"]


# --- errors ---------------------------------------------------------------------------------------
def test_missing_folder(tmp_path):
    with pytest.raises(LlmlabError, match="no such folder"):
        load_bert(tmp_path / "nope")
    with pytest.raises(LlmlabError, match="no such folder"):
        load_sentence_encoder(tmp_path / "nope")


def test_folder_without_config(tmp_path):
    with pytest.raises(LlmlabError, match="no config.json here; an HF model folder holds"):
        read_hf_folder(tmp_path)


def test_bad_config_and_missing_weights(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(LlmlabError, match=r"config.json: invalid JSON \(.* at line 1\)"):
        load_bert(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(LlmlabError, match=r"model_type .t5. is not supported \(supported: bert, llama, gpt2\)"):
        load_bert(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **TINY}))
    with pytest.raises(LlmlabError, match="no model.safetensors here"):
        load_bert(tmp_path)


def test_truncated_safetensors(tmp_path):
    shutil.copy(minilm_dir() / "config.json", tmp_path / "config.json")
    with open(minilm_dir() / "model.safetensors", "rb") as f:
        (tmp_path / "model.safetensors").write_bytes(f.read(1_000_000))  # the header and a little data
    with pytest.raises(LlmlabError, match="model.safetensors: not a readable safetensors file .* complete"):
        load_bert(tmp_path)


def test_missing_and_unknown_tensors(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **TINY}))
    state = {k: v.clone() for k, v in BertModel(BertConfig(**TINY)).state_dict().items()}
    del state["encoder.layer.1.output.dense.bias"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(LlmlabError, match="no tensor for parameters encoder.layer.1.output.dense.bias"):
        load_bert(tmp_path)
    state["encoder.layer.1.output.dense.bias"] = torch.zeros(32)
    state["encoder.layer.7.output.dense.bias"] = torch.zeros(32)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(LlmlabError, match="fit no parameter of BertModel: encoder.layer.7.output.dense.bias"):
        load_bert(tmp_path)
    del state["encoder.layer.7.output.dense.bias"]
    state["embeddings.word_embeddings.weight"] = torch.zeros(5, 32)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(LlmlabError, match=r"word_embeddings.weight has shape \(5, 32\), config.json implies"):
        load_bert(tmp_path)


def test_dropout_acts_only_in_training_mode():
    from llmlab.models.encoder import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=16, dropout=0.1)
    model = BertModel(cfg)
    ids = torch.randint(1, 50, (3, 10))
    model.eval()
    plain = model(ids)
    model.train()
    a, b = model(ids), model(ids)
    assert not torch.allclose(a, b) and not torch.allclose(a, plain)  # a fresh mask at every call
    cfg.dropout = 0.0  # read at each forward: a loaded model can be given a dropout for fine-tuning
    torch.testing.assert_close(model(ids), plain)
    assert BertConfig.from_hf_config({**{k: getattr(cfg, k) for k in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "max_position_embeddings", "type_vocab_size", "layer_norm_eps")}, "hidden_dropout_prob": 0.1}).dropout == 0.0
