"""Checkpoints (llmlab/weights/checkpoint.py): round trip, atomic save under a failing disk,
pruning, architecture mismatch, loading through load_decoder and `llmlab complete`."""

import errno
import json

import pytest
import torch

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.models.decoder import Decoder, DecoderConfig
from llmlab.tokenize.simple import CharTokenizer
from llmlab.train.optim import build_adamw
from llmlab.weights import checkpoint as ck
from llmlab.weights.registry import load_decoder

TOK = CharTokenizer(list("abcdefgh \n"))


def small(family="gpt2", dim=16) -> Decoder:
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=TOK.vocab_size, dim=dim, n_layers=1, n_heads=2, family=family, max_seq_len=32)
    return Decoder(cfg)


def stepped(model):
    """An optimizer that has taken one step (so it has moment estimates to save)."""
    opt = build_adamw(model, 1e-2)
    model(torch.randint(0, TOK.vocab_size, (2, 8))).sum().backward()
    opt.step()
    return opt


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_round_trip_weights_and_optimizer_state(tmp_path, family):
    model = small(family)
    opt = stepped(model)
    ck.save_checkpoint(tmp_path, 7, model, TOK, {"optimizer": opt.state_dict(), "step": 7})
    loaded = ck.load_checkpoint(tmp_path, trainer=True)
    assert loaded.step == 7 and loaded.config == model.config and (tmp_path / "latest").read_text() == "step-000007\n"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    assert loaded.model.lm_head.weight is loaded.model.embed_tokens.weight  # still tied
    opt2 = build_adamw(loaded.model, 1e-2)
    opt2.load_state_dict(loaded.trainer["optimizer"])
    for (a, b) in zip(opt.state.values(), opt2.state.values()):
        assert all(torch.equal(a[key], b[key]) for key in ("exp_avg", "exp_avg_sq", "step"))
    assert loaded.tokenizer.encode("bad cafe") == TOK.encode("bad cafe")


@pytest.mark.parametrize("target", ["save_file", "torch_save"])
def test_full_disk_mid_write_leaves_previous_checkpoint(tmp_path, monkeypatch, target):
    model = small()
    ck.save_checkpoint(tmp_path, 1, model, TOK, {"step": 1})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.embed_tokens.weight.add_(1.0)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if target == "save_file":
        monkeypatch.setattr(ck, "save_file", full)
    else:
        monkeypatch.setattr(ck.torch, "save", full)
    with pytest.raises(LlmlabError, match="No space left on device.*step-000001 is intact"):
        ck.save_checkpoint(tmp_path, 2, model, TOK, {"step": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000001"]  # no temporary left over
    loaded = ck.load_checkpoint(tmp_path)
    assert loaded.step == 1 and all(torch.equal(loaded.model.state_dict()[k], v) for k, v in before.items())


def test_keeps_the_newest_n(tmp_path):
    model = small()
    for step in (10, 20, 30, 40):
        ck.save_checkpoint(tmp_path, step, model, TOK, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-000030", "step-000040"]
    ck.save_checkpoint(tmp_path, 40, model, TOK, keep=2)  # the same step again replaces it
    assert ck.load_checkpoint(tmp_path).step == 40


def test_different_architecture_is_a_clear_error(tmp_path):
    ck.save_checkpoint(tmp_path, 1, small("gpt2", dim=16), TOK)
    other = small("llama", dim=32).config
    with pytest.raises(LlmlabError, match="different architecture.*gpt2 1 layers.*llama.*differs in dim, family"):
        ck.load_checkpoint(tmp_path, expect=other)
    with pytest.raises(LlmlabError, match="no trainer.pt"):
        ck.load_checkpoint(tmp_path, trainer=True)


def test_load_decoder_and_complete_cli(tmp_path, capsys):
    model = small()
    ck.save_checkpoint(tmp_path, 3, model, TOK)
    for path in (tmp_path, tmp_path / "step-000003"):  # run folder (via latest) or step folder
        bundle = load_decoder(str(path))
        assert bundle.chat_template is None and bundle.config == model.config
        assert torch.equal(bundle.model(torch.tensor([[1, 2, 3]])), model.eval()(torch.tensor([[1, 2, 3]])))
    code = main(["complete", "--model", str(tmp_path), "--max-new-tokens", "5", "--format", "json", "abc"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and len(doc["ids"]) == 5 and doc["prompt_tokens"] == 3


def test_latest_naming_a_missing_folder(tmp_path, capsys):
    (tmp_path / "latest").write_text("step-000009\n")
    assert main(["complete", "--model", str(tmp_path), "hi"]) == 2
    assert "not a checkpoint folder" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a checkpoint"])
def test_damaged_trainer_state_names_the_file_and_an_older_step(tmp_path, damage):
    model = small()
    opt = stepped(model)
    for step in (1, 2):
        ck.save_checkpoint(tmp_path, step, model, TOK, {"optimizer": opt.state_dict(), "step": step})

    def spoil(f):
        data = f.read_bytes()
        f.write_bytes({"empty": b"", "truncated": data[:1000], "not a checkpoint": b"hello\n"}[damage])

    spoil(tmp_path / "step-000002" / "trainer.pt")
    hint = r"step-000002/trainer\.pt: damaged.*older checkpoint step-000001.*latest"
    with pytest.raises(LlmlabError, match=hint) as e:
        ck.load_checkpoint(tmp_path, trainer=True)
    assert "\n" not in str(e.value)
    assert ck.load_checkpoint(tmp_path).step == 2  # the weights alone still load
    (tmp_path / "latest").write_text("step-000001\n")  # what the message suggests
    assert ck.load_checkpoint(tmp_path, trainer=True).trainer["step"] == 1
    spoil(tmp_path / "step-000001" / "trainer.pt")
    with pytest.raises(LlmlabError, match=r"step-000001/trainer\.pt: damaged.*no older checkpoint"):
        ck.load_checkpoint(tmp_path, trainer=True)


def test_tokenizer_difference_compares_tokens_not_only_sizes(tmp_path):
    ck.save_checkpoint(tmp_path, 1, small(), TOK)
    loaded = ck.load_checkpoint(tmp_path)
    assert ck.tokenizer_difference(loaded, CharTokenizer(list("abcdefgh \n"))) is None
    other = CharTokenizer(list("ABCDEFGH \n"))
    assert other.vocab_size == TOK.vocab_size
    assert ck.tokenizer_difference(loaded, other) == "id 1 is 'A' here, 'a' in the checkpoint"
    smaller = CharTokenizer(list("ab\n"))
    assert ck.tokenizer_difference(loaded, smaller) == "a vocabulary of 4 here, 11 in the checkpoint"
