"""Pre-training (llmlab/train/pretrain.py, optim.py, distributed.py): optimizer groups and schedule,
the loss goes down, resume after SIGKILL is exact, two torchrun processes equal one, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.models.decoder import Decoder, DecoderConfig
from llmlab.train.optim import Schedule, param_groups
from llmlab.train.pretrain import read_metrics, train

from .conftest import tiny

REPO = Path(__file__).resolve().parents[2]


def losses(run: Path, key: str = "loss") -> dict[int, float]:
    return {r["step"]: r[key] for r in read_metrics(run / "metrics.jsonl") if key in r}


def test_weight_decay_only_on_linear_weights():
    for family in ("gpt2", "llama"):
        model = Decoder(DecoderConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, family=family, max_seq_len=8))
        decay, no_decay = param_groups(model, 0.1)
        assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
        assert all(n.endswith(".weight") and ("proj" in n or "c_fc" in n) for n in decay["names"])
        assert "embed_tokens.weight" in no_decay["names"] and "lm_head.weight" not in decay["names"]  # tied
        assert all(n.endswith("bias") or "norm" in n or "ln_" in n or "embed" in n for n in no_decay["names"])
        assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_schedule_warms_up_then_follows_a_cosine_to_min_lr():
    s = Schedule(lr=1.0, min_lr=0.1, warmup=10, decay_steps=110)
    assert s.lr_at(0) == pytest.approx(0.1) and s.lr_at(9) == pytest.approx(1.0)
    assert s.lr_at(10) == pytest.approx(1.0) and s.lr_at(60) == pytest.approx(0.55)
    assert s.lr_at(110) == pytest.approx(0.1) and s.lr_at(500) == pytest.approx(0.1)


def test_loss_goes_down_and_run_folder_is_complete(char_data, tmp_path):
    run = tmp_path / "run"
    summary = train(tiny(char_data, run, max_iters=100, eval_interval=50, plot=True), log=lambda *a: None)
    train_losses = list(losses(run).values())
    assert train_losses[0] > 4.0 and summary["val_loss"] < train_losses[0] - 1.2 and summary["loss"] < 3.5
    assert (run / "loss.png").stat().st_size > 1000 and (run / "latest").read_text().strip() == "step-000100"
    sample = [r["sample"] for r in read_metrics(run / "metrics.jsonl") if "sample" in r]
    assert len(sample) == 2 and len(sample[-1]) == 10


KILL_SCRIPT = """
import json, os, signal, sys
from llmlab.train import data, pretrain
cfg = pretrain.config_from(json.loads(sys.argv[1]))
kill_at, calls = int(sys.argv[2]), [0]
sampler = getattr(data, sys.argv[3] if len(sys.argv) > 3 else "BatchSampler")  # the class that draws batches
draw = sampler.next
def next_or_die(self):
    calls[0] += 1
    if calls[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return draw(self)
sampler.next = next_or_die
pretrain.train(cfg, log=lambda *a: None)
"""


@pytest.mark.parametrize("optimizer", [{}, {"optimizer": "muon", "cooldown": 0.4}], ids=["adamw", "muon"])
def test_resume_after_sigkill_continues_exactly(char_data, tmp_path, optimizer):
    reference = tmp_path / "reference"
    train(tiny(char_data, reference, max_iters=30, grad_accum=2, **optimizer), log=lambda *a: None)

    killed = tmp_path / "killed"
    cfg = dict(vars(tiny(char_data, killed, max_iters=30, grad_accum=2, **optimizer)))
    # 2 batches per step: the 50th draw is in step 25, after the checkpoint at step 20
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(cfg), "50"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert (killed / "latest").read_text().strip() == "step-000020" and max(losses(killed)) == 24

    train(tiny(char_data, killed, max_iters=30, grad_accum=2, resume=True, **optimizer), log=lambda *a: None)
    assert losses(killed) == losses(reference)  # bit for bit, steps 1..30
    assert losses(killed, "val_loss") == losses(reference, "val_loss")
    a, b = (load_file(str(r / "step-000030" / "model.safetensors")) for r in (killed, reference))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Resumed once more, with no steps left: the run's last figures, not NaN
    done = train(tiny(char_data, killed, max_iters=30, grad_accum=2, resume=True, **optimizer), log=lambda *a: None)
    assert done["steps_run"] == 0 and done["step"] == 30 and done["loss"] == losses(reference)[30]
    assert done["val_loss"] == losses(reference, "val_loss")[30]


@pytest.mark.slow
def test_two_torchrun_processes_equal_one(char_data, tmp_path):
    flags = ["--data", str(char_data), "--family", "gpt2", "--n-layers", "1", "--n-heads", "2", "--dim", "16",
             "--block-size", "16", "--batch-size", "8", "--max-iters", "12", "--lr", "1e-2", "--warmup", "2",
             "--eval-interval", "6", "--eval-windows", "8", "--sample-chars", "0", "--threads", "1", "--quiet"]
    assert main(["train", "--out", str(tmp_path / "one"), *flags]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "llmlab.cli", "train", "--out", str(tmp_path / "two"), *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("checkpoint in") == 1, proc.stdout  # one summary, from the first process
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert one.keys() == two.keys() and all(abs(one[k] - two[k]) < 1e-5 for k in one)
    assert losses(tmp_path / "one", "val_loss") == pytest.approx(losses(tmp_path / "two", "val_loss"), abs=1e-5)
    a, b = (load_file(str(tmp_path / r / "step-000012" / "model.safetensors")) for r in ("one", "two"))
    # A key bias has zero gradient in exact arithmetic (softmax ignores a shift shared by all keys
    # of a query), so Adam scales two different rounding noises up to lr-sized steps: leave it out.
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=0) for k in a if not k.endswith("k_proj.bias"))


def test_bad_training_input_is_one_line_exit_2(char_data, tmp_path, capsys):
    with pytest.raises(LlmlabError, match="longer than the model's context window"):
        tiny(char_data, tmp_path / "r", block_size=64, max_seq_len=32)
    base = ["train", "--data", str(char_data), "--n-layers", "1", "--n-heads", "2", "--dim", "16",
            "--max-iters", "2", "--eval-interval", "2", "--sample-chars", "0", "--quiet", "--block-size", "16"]
    assert main([*base, "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    cases = [
        [*base, "--out", str(tmp_path / "r"), "--resume", "--dim", "32"],  # a different architecture
        [*base, "--out", str(tmp_path / "r")],  # a checkpoint is there and --resume is not given
        [*base, "--out", str(tmp_path / "x"), "--max-seq-len", "8"],  # block size > context window
        [*base, "--out", str(tmp_path / "x"), "--preset", "nope"],
        [*base, "--out", str(tmp_path / "x"), "--block-size", "100000"],  # windows longer than the data
        [*base, "--out", str(tmp_path / "r"), "--resume", "--optimizer", "muon"],  # trained with adamw
        [*base, "--out", str(tmp_path / "x"), "--optimizer", "sgd"],
        [*base, "--out", str(tmp_path / "x"), "--cooldown", "1.5"],
    ]
    for args in cases:
        assert main(args) == 2, args
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(cases) and all(line.startswith("llmlab: error: ") for line in err)
    assert "different architecture" in err[0] and "--resume" in err[1] and "context window" in err[2]
    assert "trained with --optimizer adamw" in err[5] and "unknown optimizer" in err[6] and "cooldown" in err[7]


def words_folder(folder: Path, letters: str, seed: int, tokenizer: str = "char") -> Path:
    """A token folder of random words over ``letters`` (a few thousand characters)."""
    import random

    from llmlab.train.data import prepare

    rng = random.Random(seed)
    text = "\n".join(" ".join("".join(rng.choice(letters) for _ in range(rng.randint(1, 7))) for _ in range(12))
                     for _ in range(80)) + "\n"
    (folder.parent / f"{folder.name}.txt").write_text(text, encoding="utf-8")
    prepare([folder.parent / f"{folder.name}.txt"], tokenizer, folder, val_fraction=0.1, progress=False)
    return folder


def test_resume_refuses_another_tokenizer_or_a_damaged_trainer_state(tmp_path, capsys):
    lower = words_folder(tmp_path / "lower", "abcdefghijklmnopqr", seed=1)
    upper = words_folder(tmp_path / "upper", "ABCDEFGHIJKLMNOPQR", seed=2)  # the same vocabulary size
    same = words_folder(tmp_path / "same", "rqponmlkjihgfedcba", seed=3, tokenizer=str(lower / "llmlab-tokenizer.json"))
    assert json.loads((upper / "meta.json").read_text())["vocab_size"] == json.loads(
        (lower / "meta.json").read_text())["vocab_size"]
    run = tmp_path / "run"
    base = ["train", "--out", str(run), "--n-layers", "1", "--n-heads", "2", "--dim", "16", "--block-size", "16",
            "--eval-interval", "2", "--sample-chars", "0", "--quiet", "--threads", "1"]
    assert main([*base, "--data", str(lower), "--max-iters", "4"]) == 0  # step-000002, step-000004
    capsys.readouterr()
    assert main([*base, "--data", str(upper), "--max-iters", "6", "--resume"]) == 2
    trainer = run / "step-000004" / "trainer.pt"
    trainer.write_bytes(trainer.read_bytes()[:1000])
    assert main([*base, "--data", str(lower), "--max-iters", "6", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("llmlab: error: ") for line in err)
    assert "tokenizer" in err[0] and "'A' here, 'a'" in err[0] and f"--data {lower}" in err[0]
    assert f"{trainer}: damaged" in err[1] and "step-000002" in err[1]
    (run / "latest").write_text("step-000002\n")  # what the message suggests
    assert main([*base, "--data", str(same), "--max-iters", "6", "--resume"]) == 0  # same tokenizer, other text
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r] == [1, 2, 3, 4, 5, 6]
