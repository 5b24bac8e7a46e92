"""Masked-LM pre-training of encoders (llmlab/train/pretrain.py objective "mlm", data.py Masking,
models/encoder.py BertForMaskedLM, weights/checkpoint.py and registry.py for encoders): BERT's
masking statistics, the head against transformers, the loss goes down, resume after SIGKILL is
exact, the checkpoint embeds through load_encoder and `llmlab embed`, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.models.encoder import BertConfig, BertForMaskedLM, SentenceEncoder, init_bert, pool
from llmlab.train.data import IGNORE, MaskedBatchSampler, Masking, TokenData, prepare
from llmlab.train.pretrain import TrainConfig, evaluate_mlm, read_metrics, train
from llmlab.weights.checkpoint import load_checkpoint
from llmlab.weights.registry import load_decoder, load_encoder

from .conftest import SAMPLE, tiny
from .test_pretrain import KILL_SCRIPT

REPO = Path(__file__).resolve().parents[2]
QUIET = dict(log=lambda *a: None)


def mlm(data: Path, out: Path, **overrides):
    """A seconds-scale masked-LM TrainConfig: enough masked positions per step to learn from."""
    return tiny(data, out, **{"family": "bert", "block_size": 32, "batch_size": 16, "sample_chars": 4,
                              **overrides})


def losses(run: Path, key: str = "loss") -> dict[int, float]:
    return {r["step"]: r[key] for r in read_metrics(run / "metrics.jsonl") if key in r}


@pytest.fixture(scope="module")
def mlm_run(char_data, tmp_path_factory) -> Path:
    """A masked-LM run on the character-level sample: 100 steps, evaluations at 50 and 100."""
    run = tmp_path_factory.mktemp("mlm") / "run"
    train(mlm(char_data, run, max_iters=100, eval_interval=50, plot=True), **QUIET)
    return run


# --- masking ------------------------------------------------------------------------------
def test_masking_follows_bert_15_percent_then_80_10_10():
    specials = (0, 1, 2, 3)  # [PAD]-like, [CLS], [SEP], [MASK]
    m = Masking(mask_id=3, vocab_size=50, special_ids=specials, cls_id=1, sep_id=2)
    g = torch.Generator().manual_seed(0)
    body = torch.randint(4, 50, (4000, 62), generator=g)
    body[::7, 10] = 0  # some windows hold a special token inside
    ids = m.frame(body)  # (4000, 64): [CLS] ... [SEP]
    inputs, labels = m(ids, torch.Generator().manual_seed(1))
    chosen = labels != IGNORE

    special = torch.isin(ids, torch.tensor(specials))
    assert not (chosen & special).any()  # never a special position
    n_ordinary = (~special).sum(dim=1)
    expected = torch.floor(n_ordinary * 0.15 + 0.5)  # 62 -> 9, 61 -> 9
    assert torch.equal(chosen.sum(dim=1), expected.long())
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])

    fed, original = inputs[chosen], ids[chosen]
    masked = fed == 3
    random = ~masked & (fed != original)
    kept = fed == original
    assert abs(masked.float().mean() - 0.8) < 0.01
    assert abs(random.float().mean() - 0.1 * 45 / 46) < 0.01  # a random draw can be the original token
    assert abs(kept.float().mean() - (0.1 + 0.1 / 46)) < 0.01
    assert not torch.isin(fed[~masked], torch.tensor(specials)).any()  # random tokens are ordinary
    assert set(fed[random].tolist()) == set(range(4, 50))  # drawn from every ordinary id

    again, _ = m(ids, torch.Generator().manual_seed(1))
    assert torch.equal(again, inputs)  # seeded: the same draws give the same masking


def test_masking_edge_windows_at_least_one_and_none_without_ordinary_tokens():
    m = Masking(mask_id=9, vocab_size=10, special_ids=(0, 9))
    ids = torch.tensor([[5, 0, 0, 0], [0, 0, 0, 0], [1, 2, 3, 4]])
    inputs, labels = m(ids, torch.Generator().manual_seed(0))
    assert (labels[0] != IGNORE).tolist() == [True, False, False, False]  # at least one
    assert (labels[1] == IGNORE).all() and torch.equal(inputs[1], ids[1])  # nothing to choose
    assert (labels[2] != IGNORE).sum() == 1  # 15% of 4 rounds to 1


def test_mask_token_and_framing_come_from_the_tokenizer(char_data, minilm):
    char = Masking.for_tokenizer(TokenData(char_data).tokenizer())
    V = TokenData(char_data).vocab_size
    assert char.added_mask and char.mask_id == V and char.vocab_size == V + 1 and not char.framed
    assert char.body(32) == 32 and V not in char.replacements.tolist()
    wp = Masking.for_tokenizer(minilm)
    assert not wp.added_mask and wp.mask_id == 103 and wp.vocab_size == minilm.vocab_size
    assert (wp.cls_id, wp.sep_id) == (101, 102) and wp.body(32) == 30
    assert not set(wp.special_ids) & set(wp.replacements.tolist())


def test_wordpiece_data_is_plain_text_and_windows_are_framed(tmp_path, minilm):
    prepare([SAMPLE], "minilm", tmp_path, progress=False)
    data = TokenData(tmp_path)
    stream = torch.from_numpy(data.split("train").astype("int64"))
    assert not torch.isin(stream, torch.tensor([101, 102])).any()  # no [CLS]/[SEP] around each chunk
    sampler = MaskedBatchSampler(data.split("train"), 16, 8, Masking.for_tokenizer(data.tokenizer()), seed=0)
    inputs, labels = sampler.next()
    assert inputs.shape == (8, 16) and (inputs[:, 0] == 101).all() and (inputs[:, -1] == 102).all()
    assert (labels[:, [0, -1]] == IGNORE).all() and ((labels != IGNORE).sum(dim=1) == 2).all()  # 15% of 14


# --- the head against transformers ----------------------------------------------------------
def test_mlm_head_equals_transformers_bert_for_masked_lm():
    sizes = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=40, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu",
                 pad_token_id=0)
    torch.manual_seed(0)
    hf = transformers.BertForMaskedLM(transformers.BertConfig(**sizes, attn_implementation="eager")).eval()
    with torch.no_grad():
        for p in hf.parameters():  # random everywhere, LayerNorm gains and biases included
            p.normal_(0.0, 0.3)
    ours = BertForMaskedLM(BertConfig(**sizes)).eval()
    theirs = hf.state_dict()
    mine = ours.state_dict()
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}  # = word embeddings, bias
    assert set(theirs) - tied == set(mine)  # every name mirrors HF's, both ways
    ours.load_state_dict({k: theirs[k] for k in mine})

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 99, (3, 11), generator=g)
    mask = (torch.arange(11) < torch.tensor([[11], [7], [2]])).long()  # (3, 11)
    types = torch.randint(0, 2, (3, 11), generator=g)
    with torch.no_grad():
        expected = hf(input_ids=ids * mask, attention_mask=mask, token_type_ids=types).logits
        got = ours(ids * mask, mask, types)
        ref = ours(ids * mask, mask, types, reference=True)
        some = ours(ids * mask, mask, types, positions=mask.bool())
    real = mask.bool()
    assert got.shape == (3, 11, 99)
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(ref[real], expected[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(some, got[real], atol=1e-6, rtol=0)  # only the chosen rows


def test_bert_init_and_tied_decoder():
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=256, max_position_embeddings=32, pad_token_id=0))
    init_bert(model)
    q = model.bert.encoder.layer[0].attention.self.query
    w = model.bert.embeddings.word_embeddings.weight
    assert abs(q.weight.std() - 0.02) < 0.002 and abs(w[1:].std() - 0.02) < 0.002 and (q.bias == 0).all()
    assert (w[0] == 0).all()  # the padding row
    head = model.cls.predictions
    assert (head.bias == 0).all() and (head.transform.LayerNorm.weight == 1).all()
    assert (head.transform.LayerNorm.bias == 0).all()
    assert not any("decoder" in k for k in model.state_dict())  # stored once, as the word embeddings
    with torch.no_grad():
        w.add_(1.0)  # the output layer moves with the embedding table
        ids = torch.tensor([[5, 6, 7]])
        h = head.transform.LayerNorm(torch.nn.functional.gelu(head.transform.dense(model.bert(ids))))
        torch.testing.assert_close(model(ids), h @ w.T + head.bias)


# --- the loop ---------------------------------------------------------------------------------
def test_loss_goes_down_and_validation_is_fixed(mlm_run, char_data):
    train_losses = list(losses(mlm_run).values())
    first, last = train_losses[0], sum(train_losses[-10:]) / 10
    val = losses(mlm_run, "val_loss")
    assert first > 4.5 and last < first - 1.2 and val[100] < first - 0.8  # ln(123 ids) = 4.81 at the start
    records = [r for r in read_metrics(mlm_run / "metrics.jsonl") if "val_loss" in r]
    assert all(0.1 < r["val_accuracy"] <= 1 for r in records)
    assert len(records[-1]["predictions"]) == 4 and len(records[-1]["predictions"][0]["top"]) == 3
    assert (mlm_run / "loss.png").stat().st_size > 1000 and (mlm_run / "latest").read_text().strip() == "step-000100"
    meta = json.loads((mlm_run / "step-000100" / "config.json").read_text())
    assert meta["model"] == "encoder" and meta["objective"] == "mlm" and meta["mask_token_added"]

    ckpt = load_checkpoint(mlm_run, kind="encoder")
    data = TokenData(char_data)
    masking = Masking.for_tokenizer(data.tokenizer())
    again = [evaluate_mlm(ckpt.model, data.split("val"), [0, 32, 64, 96], 32, masking, "cpu", seed=5)
             for _ in range(2)]
    assert again[0] == again[1]  # a fixed, seeded masking: the same number every evaluation




def test_resume_after_sigkill_continues_exactly(char_data, tmp_path):
    reference = tmp_path / "reference"
    train(mlm(char_data, reference, max_iters=30, grad_accum=2), **QUIET)

    killed = tmp_path / "killed"
    cfg = dict(vars(mlm(char_data, killed, max_iters=30, grad_accum=2)))
    # 2 batches per step: the 50th draw is in step 25, after the checkpoint at step 20
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(cfg), "50", "MaskedBatchSampler"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert (killed / "latest").read_text().strip() == "step-000020" and max(losses(killed)) == 24

    train(mlm(char_data, killed, max_iters=30, grad_accum=2, resume=True), **QUIET)
    assert losses(killed) == losses(reference)  # bit for bit, steps 1..30
    assert losses(killed, "val_loss") == losses(reference, "val_loss")
    a, b = (load_file(str(r / "step-000030" / "model.safetensors")) for r in (killed, reference))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- the checkpoint as a sentence encoder --------------------------------------------------------
def test_checkpoint_loads_as_sentence_encoder_and_embeds_from_the_cli(mlm_run, capsys):
    enc = load_encoder(str(mlm_run))
    ckpt = load_checkpoint(mlm_run, kind="encoder")
    assert isinstance(enc, SentenceEncoder) and enc.pooling == ("mean",) and not enc.normalize
    assert enc.dim == 16 and enc.max_seq_length == 32
    texts = ["to be or not", "a" * 50]  # the second is cut to the block size
    vectors = enc.encode(texts)
    ids = torch.tensor([ckpt.tokenizer.encode(texts[0])])
    with torch.no_grad():
        expected = pool(ckpt.model.bert(ids), torch.ones_like(ids), ("mean",))[0]
    torch.testing.assert_close(vectors[0], expected, atol=1e-5, rtol=0)
    assert enc.truncated == 1 and len(enc.token_embeddings("to be")[0]) == 5

    assert main(["embed", "--model", str(mlm_run / "step-000100"), "to be", "or not"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(len(r) == 16 for r in rows)


def test_wordpiece_checkpoint_embeds_with_cls_and_sep(tmp_path):
    data = tmp_path / "wp"
    prepare([SAMPLE], "minilm", data, progress=False)
    run = tmp_path / "run"
    train(mlm(data, run, max_iters=2, eval_interval=2, eval_windows=2, batch_size=2), **QUIET)
    enc = load_encoder(str(run))
    tokens, hidden = enc.token_embeddings("Hello world")
    assert tokens == ["[CLS]", "hello", "world", "[SEP]"] and hidden.shape == (4, 16)
    assert enc.tokenizer.encode("word " * 100)[-1] == 102 and len(enc.tokenizer.encode("word " * 100)) == 32
    assert load_checkpoint(run, kind="encoder").config.pad_token_id == 0  # WordPiece's [PAD]


# --- bad input ------------------------------------------------------------------------------
def test_objective_and_family_must_fit(char_data, tmp_path):
    for overrides, message in [
        (dict(objective="mlm"), "trains an encoder, family bert, not the decoder family gpt2"),
        (dict(family="bert", objective="clm"), "trains a decoder"),
        (dict(objective="prefix"), "unknown objective"),
        (dict(family="t5"), "unknown family"),
        (dict(family="bert", n_kv_heads=1), "llama family"),
    ]:
        with pytest.raises(LlmlabError, match=message):
            tiny(char_data, tmp_path, **overrides)  # tiny sets family gpt2
    assert TrainConfig(str(char_data), str(tmp_path), objective="mlm").family == "bert"
    assert TrainConfig(str(char_data), str(tmp_path), family="bert").objective == "mlm"
    assert TrainConfig(str(char_data), str(tmp_path)).family == "gpt2"


def test_wrong_kind_of_checkpoint_is_one_line_exit_2(mlm_run, char_data, tmp_path, capsys):
    decoder_run = tmp_path / "decoder"
    base = ["train", "--data", str(char_data), "--n-layers", "1", "--n-heads", "2", "--dim", "16",
            "--block-size", "16", "--max-iters", "2", "--eval-interval", "2", "--sample-chars", "0", "--quiet"]
    assert main([*base, "--out", str(decoder_run)]) == 0
    with pytest.raises(LlmlabError, match="is a decoder .*, not an encoder"):
        load_encoder(str(decoder_run))
    with pytest.raises(LlmlabError, match="is an encoder .*llmlab embed --model.*, not a decoder"):
        load_decoder(str(mlm_run))
    capsys.readouterr()
    cases = [
        ["complete", "--model", str(mlm_run), "hello"],  # generation from an encoder
        ["embed", "--model", str(decoder_run), "hello"],  # embeddings from a decoder
        [*base, "--out", str(decoder_run), "--objective", "mlm", "--resume"],  # resume a decoder as an encoder
        [*base, "--out", str(tmp_path / "x"), "--objective", "mlm", "--family", "gpt2"],
        ["train", "--data", str(char_data), "--out", str(tmp_path / "x"), "--preset", "shakespeare-char",
         "--objective", "mlm"],
    ]
    for args in cases:
        assert main(args) == 2, args
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(cases) and all(line.startswith("llmlab: error: ") for line in err)
    assert "is an encoder" in err[0] and "is a decoder" in err[1] and "not an encoder" in err[2]
    assert "trains an encoder" in err[3] and "--preset bert-tiny" in err[4]
