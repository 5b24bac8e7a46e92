"""SFT (llmlab.train.sft): loss masks on SmolLM2's real chat template, data errors, the length
policy, a few training steps on a tiny decoder, and `llmlab finetune sft` end to end."""

import json

import pytest
import torch

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.generate import ChatTemplate
from llmlab.models.decoder import Decoder, DecoderConfig
from llmlab.train.sft import (
    IGNORE,
    TrainConfig,
    build_examples,
    encode_chat,
    fit,
    read_conversations,
    record_messages,
    save_decoder,
    split,
)


@pytest.fixture(scope="module")
def template_source():
    from llmlab.packages import smollm2_gguf
    from llmlab.tokenize.gguf import read_gguf_metadata

    return read_gguf_metadata(smollm2_gguf())["tokenizer.chat_template"]


@pytest.fixture(scope="module")
def chat(smollm2, template_source):
    return ChatTemplate(template_source, smollm2.bos_token or "", smollm2.eos_token or "")


def runs(ids, labels):
    """Contiguous runs of trained ids."""
    out, cur = [], []
    for i, lab in zip(ids, labels):
        if lab != IGNORE:
            assert lab == i
            cur.append(i)
        elif cur:
            out.append(cur)
            cur = []
    return out + ([cur] if cur else [])


def test_exactly_the_assistant_text_is_trained(smollm2, chat):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there!"},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": " 4\n\nDone."}]
    ids, labels = encode_chat(messages, smollm2, chat)
    assert [smollm2.decode(r) for r in runs(ids, labels)] == ["Hello! How can I help?<|im_end|>",
                                                              " 4\n\nDone.<|im_end|>"]
    # everything else is the rendered prompt, and the whole sequence is the template's text
    assert smollm2.decode(ids) == chat.render(messages, add_generation_prompt=False).rstrip("\n")
    assert labels[-1] == smollm2.special_tokens["<|im_end|>"]
    # the prompt part is tokenized exactly as at inference time
    prompt = smollm2.encode(chat.render(messages[:2], add_generation_prompt=True))
    assert ids[:len(prompt)] == prompt and labels[len(prompt)] != IGNORE and labels[len(prompt) - 1] == IGNORE


def test_alpaca_record_becomes_one_exchange(smollm2, chat):
    m = record_messages({"instruction": "Convert 45 km to m.", "input": "", "output": "45000 m."}, "r")
    assert m == [{"role": "user", "content": "Convert 45 km to m."}, {"role": "assistant", "content": "45000 m."}]
    m = record_messages({"instruction": "Fix:", "input": "He go.", "output": "He goes."}, "r")
    assert m[0]["content"] == "Fix:\n\nHe go."
    ids, labels = encode_chat(m, smollm2, chat)
    assert [smollm2.decode(r) for r in runs(ids, labels)] == ["He goes.<|im_end|>"]


@pytest.mark.parametrize("text, message", [
    ('[{"instruction": "a", "output": "b"}, {"prompt": "x", "completion": "y"}]',
     r"record 2: expected 'instruction'/'output' fields or a 'messages' list \(found keys: 'prompt', 'completion'\)"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "record 1: no assistant message"),
    ('{"messages": [{"role": "bot", "content": "hi"}]}', "record 1: message 1 needs a role"),
    ('[1, 2]', "record 1: expected an object, got int"),
    ('{"instruction": "a", "output": ', r"line 1 is not valid JSON \(Expecting value, column 32\)"),
    ('{"instruction": "a", "output": "b"}\n\n{"instruction": "c", "output": "d"}\n{"instruction": "e", "output"\n',
     r"line 4 is not valid JSON \(Expecting ':' delimiter, column 30\)"),  # the file's line, blank ones counted
    ('[{"instruction": "a", "output": "b"},\n {"x" 1}]', r"not valid JSON \(Expecting ':' delimiter, line 2\)"),
])
def test_bad_records_name_the_record(tmp_path, text, message):
    path = tmp_path / "data.jsonl"
    path.write_text(text)
    with pytest.raises(LlmlabError, match=message):
        read_conversations(path)


def test_jsonl_and_json_read_alike(tmp_path):
    recs = [{"instruction": "a", "output": "b"}, {"messages": [{"role": "user", "content": "q"},
                                                                {"role": "assistant", "content": "r"}]}]
    (tmp_path / "d.json").write_text(json.dumps(recs))
    (tmp_path / "d.jsonl").write_text("\n".join(map(json.dumps, recs)) + "\n")
    assert read_conversations(tmp_path / "d.json") == read_conversations(tmp_path / "d.jsonl")


def test_long_records_error_or_are_truncated_and_reported(smollm2, chat):
    convs = [record_messages({"instruction": "short", "output": "ok"}, "r"),
             record_messages({"instruction": "long " * 20, "output": "answer " * 50}, "r")]
    with pytest.raises(LlmlabError, match=r"data.json: record 2 is \d+ tokens, longer than the limit of 80"):
        build_examples(convs, smollm2, chat, max_len=80, source="data.json")
    examples, report = build_examples(convs, smollm2, chat, max_len=80, truncate=True)
    assert report == {"records": 2, "truncated": 1, "dropped": 0} and len(examples[1].ids) == 80
    examples, report = build_examples(convs, smollm2, chat, max_len=40, truncate=True)  # answer cut away entirely
    assert report["dropped"] == 1 and len(examples) == 1


def tiny_decoder(vocab: int) -> Decoder:
    torch.manual_seed(0)
    return Decoder(DecoderConfig(family="llama", vocab_size=vocab, dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
                                 ffn_dim=64, max_seq_len=128))


def test_fit_lowers_the_loss_and_lora_trains_only_adapters(smollm2, chat):
    from llmlab.nn.lora import apply_lora

    convs = [record_messages({"instruction": f"Say {w}.", "output": f"{w} {w} {w}."}, "r")
             for w in ("red", "green", "blue", "yellow")]
    examples, _ = build_examples(convs, smollm2, chat, max_len=128)
    model = tiny_decoder(smollm2.vocab_size)
    frozen = model.layers[0].mlp.up_proj.weight.clone()
    apply_lora(model, ("q_proj", "v_proj", "up_proj", "down_proj"), r=4, alpha=8)
    pad = smollm2.special_tokens["<|im_end|>"]
    h = fit(model, examples, examples[:2], TrainConfig(epochs=6, lr=1e-2, batch_size=2, grad_accum=2), pad,
            progress=False, log=lambda m: None)
    assert h.steps == 6 and h.tokens > 0
    assert h.val_loss[-1][1] < h.val_loss[0][1]
    assert torch.equal(model.layers[0].mlp.up_proj.base.weight, frozen)


def test_split_is_seeded():
    a = split(list(range(20)), 0.1, seed=0)
    assert a == split(list(range(20)), 0.1, seed=0) and len(a[1]) == 2 and sorted(a[0] + a[1]) == list(range(20))


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, smollm2, template_source):
    """A tiny Llama decoder with SmolLM2's tokenizer and template, saved as a model folder."""
    from llmlab.weights.gguf import DecoderBundle

    model = tiny_decoder(smollm2.vocab_size).eval()
    folder = tmp_path_factory.mktemp("tiny")
    save_decoder(DecoderBundle(model, smollm2, model.config, template_source, {}), folder)
    return folder


def test_save_decoder_reloads(tiny_folder, smollm2):
    from llmlab.weights.registry import load_decoder

    bundle = load_decoder(str(tiny_folder))
    ids = torch.tensor([smollm2.encode("hello world")])
    torch.testing.assert_close(bundle.model(ids), tiny_decoder(smollm2.vocab_size).eval()(ids))
    assert bundle.chat_template and bundle.tokenizer.eos_token == "<|im_end|>"


def test_cli_lora_then_complete_with_adapter(tmp_path, capsys, tiny_folder):
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"instruction": f"Say {w}.", "output": f"{w}."} for w in "abcdefghij"]))
    out = tmp_path / "adapter"
    assert main(["finetune", "sft", str(data), "--model", str(tiny_folder), "--out", str(out), "--lora",
                 "--rank", "4", "--max-steps", "2", "--batch-size", "4", "--quiet", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "lora" and doc["steps"] == 2 and doc["val_examples"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["adapter.safetensors", "adapter_config.json", "training.json"]
    assert main(["complete", "Hi", "--model", str(tiny_folder), "--adapter", str(out), "--max-new-tokens", "3",
                 "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["ids"]) <= 3


def test_cli_bad_inputs_are_one_line_exit_2(tmp_path, capsys, tiny_folder, smollm2, template_source):
    from llmlab.nn.lora import apply_lora, save_adapter

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question": "q", "answer": "a"}]))
    long = tmp_path / "long.json"
    long.write_text(json.dumps([{"instruction": "hi", "output": "ok"}, {"instruction": "x " * 200, "output": "y"}]))
    other = Decoder(DecoderConfig(family="llama", vocab_size=smollm2.vocab_size, dim=48, n_layers=2, n_heads=4,
                                  n_kv_heads=2, ffn_dim=64, max_seq_len=128))
    apply_lora(other, ("q_proj", "v_proj"), r=2)
    save_adapter(other, tmp_path / "wrong", base_model="other-48")
    cases = [
        (["finetune", "sft", str(bad), "--model", str(tiny_folder), "--out", str(tmp_path / "o")],
         "record 1: expected 'instruction'/'output' fields or a 'messages' list"),
        (["finetune", "sft", str(long), "--model", str(tiny_folder), "--out", str(tmp_path / "o")],
         "record 2 is"),
        (["complete", "Hi", "--model", str(tiny_folder), "--adapter", str(tmp_path / "wrong")],
         "adapter for base 'other-48' does not fit this model"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("llmlab: error: ") and message in err and "\n" not in err


def test_cli_full_finetune_writes_a_checkpoint(tmp_path, capsys, tiny_folder):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Say {w}."},
                                                     {"role": "assistant", "content": f"{w}."}]}) + "\n"
                            for w in "abcdef"))
    out = tmp_path / "full"
    assert main(["finetune", "sft", str(data), "--model", str(tiny_folder), "--out", str(out), "--max-steps", "1",
                 "--batch-size", "2", "--quiet", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "full"
    assert main(["complete", "Hi", "--model", str(out), "--max-new-tokens", "2", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["ids"]) <= 2
