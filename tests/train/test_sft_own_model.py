"""Fine-tuning a base model pre-trained here (no chat template) into a chat model, end to end:
`llmlab train` -> `llmlab finetune sft` (plain turns) -> `llmlab chat --model` stops at the turn's end."""

import io
import json

from llmlab.cli import main
from llmlab.generate import ChatTemplate
from llmlab.generate.chat import PLAIN_TEMPLATE
from llmlab.train.pretrain import train
from llmlab.train.sft import IGNORE, encode_chat
from llmlab.weights.checkpoint import load_checkpoint

from .conftest import tiny

PAIRS = [("say yes", "yes"), ("say no", "no"), ("name a colour", "red"), ("name a day", "monday")]


def test_plain_template_labels_the_answer_and_its_blank_line(char_data):
    from llmlab.train.data import TokenData

    tok = TokenData(char_data).tokenizer()
    messages = [{"role": "user", "content": "say yes"}, {"role": "assistant", "content": "yes"}]
    template = ChatTemplate(PLAIN_TEMPLATE)
    assert template.render(messages, add_generation_prompt=False) == "USER:\nsay yes\n\nASSISTANT:\nyes\n\n"
    ids, labels = encode_chat(messages, tok, template)
    trained = tok.decode([i for i, lab in zip(ids, labels) if lab != IGNORE])
    assert trained == "yes\n\n" and tok.decode(ids).startswith("USER:\nsay yes\n\nASSISTANT:\n")


def test_own_base_model_becomes_a_chat_model(char_data, tmp_path, capsys, monkeypatch):
    base = tmp_path / "base"
    train(tiny(char_data, base, max_iters=60, block_size=32, max_seq_len=64), log=lambda *a: None)
    # without --max-new-tokens, `complete` (default 128) and `chat` (512) fit a 64-token window
    assert main(["complete", "--model", str(base), "--format", "json", "First"]) == 0
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert done["prompt_tokens"] + len(done["ids"]) == 64 or done["finish_reason"] == "eos", done
    assert main(["complete", "--model", str(base), "--max-new-tokens", "100", "First"]) == 2  # asked: refused
    assert "more than the model's context window of 64" in capsys.readouterr().err
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in PAIRS * 10))
    out = tmp_path / "chat-model"
    code = main(["finetune", "sft", str(data), "--model", str(base), "--out", str(out), "--epochs", "12",
                 "--lr", "1e-2", "--quiet", "--format", "json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    history = json.loads((out / "training.json").read_text())["history"]
    assert history["val_loss"][-1][1] < history["val_loss"][0][1] - 0.3  # (step, loss): it learnt the format
    assert load_checkpoint(out).chat_template == PLAIN_TEMPLATE and report
    monkeypatch.setattr("sys.stdin", io.StringIO("say yes\n"))
    code = main(["chat", "--model", str(out), "--temperature", "0", "--format", "json"])  # answers <= 32 tokens
    captured = capsys.readouterr()
    assert captured.out, captured.err
    turn = json.loads(captured.out.strip().splitlines()[-1])
    assert code == 0 and turn["user"] == "say yes" and turn["assistant"] == "yes"
    assert turn["finish_reason"] == "stop"  # at the blank line it was fine-tuned to write
