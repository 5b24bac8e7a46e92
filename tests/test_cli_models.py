"""The model commands: complete, chat, embed, similarity, and their one-line errors."""

import io
import json

import pytest

from llmlab.cli import main
from llmlab.generate import GenerationConfig, complete


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_complete_json_is_greedy_and_exact(capsys, smollm2_model):
    code, out, _ = run(capsys, "complete", "--temperature", "0", "--max-new-tokens", "8", "--format", "json",
                       "The capital of France is")
    doc = json.loads(out)
    expected = complete(smollm2_model.model, smollm2_model.tokenizer, "The capital of France is",
                        GenerationConfig(max_new_tokens=8))
    assert code == 0 and doc["model"] == "smollm2" and doc["ids"] == expected.ids and doc["text"] == expected.text
    assert doc["prompt_tokens"] == len(smollm2_model.tokenizer.encode("The capital of France is"))


def test_complete_repetition_penalty(capsys, smollm2_model):
    prompt = "la femme au martyre, la femme au martyre, la femme au martyre,"
    args = ["complete", "--temperature", "0", "--max-new-tokens", "24", "--format", "json", prompt]
    free, penalised = [json.loads(run(capsys, *args[:-1], *extra, prompt)[1])
                       for extra in ([], ["--repetition-penalty", "1.3"])]
    expected = complete(smollm2_model.model, smollm2_model.tokenizer, prompt,
                        GenerationConfig(max_new_tokens=24, repetition_penalty=1.3))
    assert penalised["ids"] == expected.ids != free["ids"]
    assert penalised["text"].count("martyre") < free["text"].count("martyre")


def test_complete_streams_text(capsys):
    code, out, err = run(capsys, "complete", "--max-new-tokens", "6", "--precision", "int8", "Two plus two is")
    assert code == 0 and out.strip() and "tok/s" in err


def test_chat_reads_one_message_per_line(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("What is the capital of France?\n/reset\nSay hello.\n"))
    code, out, _ = run(capsys, "chat", "--temperature", "0", "--max-new-tokens", "40",
                       "--system", "Answer in one short sentence.")
    assert code == 0 and "Paris" in out and len([line for line in out.splitlines() if line.strip()]) >= 2



def test_chat_refuses_a_piped_message_that_is_not_utf8(capsys, monkeypatch):
    """Python keeps stdin bytes that are not UTF-8 as surrogates; the message is refused, naming the byte."""
    stdin = io.TextIOWrapper(io.BytesIO(b"Say hello.\ncaf\xe9?\n"), encoding="utf-8", errors="surrogateescape")
    monkeypatch.setattr("sys.stdin", stdin)
    code, out, err = run(capsys, "chat", "--temperature", "0", "--max-new-tokens", "4")
    assert code == 2 and out.strip()  # the first message was answered
    assert err.strip().splitlines()[-1] == ("llmlab: error: <stdin>: the message is not valid UTF-8 (byte 0xe9); "
                                           "convert the input to UTF-8")
    strict = io.TextIOWrapper(io.BytesIO(b"caf\xe9?\n"), encoding="utf-8")  # a UTF-8 locale: decoding fails
    monkeypatch.setattr("sys.stdin", strict)
    code, _, err = run(capsys, "chat", "--temperature", "0", "--max-new-tokens", "4")
    assert code == 2 and "not valid UTF-8 (byte 0xe9)" in err

def test_chat_json_is_one_object_per_answer(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("\ufeffWhat is the capital of France?\n\nSay hello.\n"))  # BOM
    code, out, _ = run(capsys, "chat", "--temperature", "0", "--max-new-tokens", "12", "--format", "json",
                       "--system", "Answer in one short sentence.")
    turns = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [t["user"] for t in turns] == ["What is the capital of France?", "Say hello."]
    assert "Paris" in turns[0]["assistant"] and 0 < turns[0]["new_tokens"] <= 12
    assert turns[1]["prompt_tokens"] > turns[0]["prompt_tokens"]  # the second turn sees the first


def test_embed_writes_json_lines(capsys, tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("a cat sat on the mat\n我喜欢自然语言处理\n\nlast line 🙂\n", encoding="utf-8")
    code, out, _ = run(capsys, "embed", "-f", str(path))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 4 and all(len(r) == 384 for r in rows)
    assert abs(sum(x * x for x in rows[0]) - 1) < 1e-4  # MiniLM's vectors are normalised
    assert all(round(x, 7) == x for r in rows for x in r)  # 7 decimals, as round(x, 7) gives them
    code, out, _ = run(capsys, "embed", "-f", str(path), "--format", "text")
    assert code == 0
    assert max(abs(float(x) - y) for line, row in zip(out.splitlines(), rows, strict=True)
               for x, y in zip(line.split(), row, strict=True)) < 1e-6


def test_similarity_matrix(capsys):
    texts = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell today."]
    code, out, _ = run(capsys, "similarity", "--format", "json", *texts)
    sim = json.loads(out)["cosine"]
    assert code == 0 and abs(sim[0][0] - 1) < 1e-5 and sim[0][1] > sim[0][2] + 0.2
    code, out, err = run(capsys, "similarity", *texts)
    assert code == 0 and len(out.splitlines()) == 4 and "1.000" in out and err == ""
    long = "word " * 400  # past MiniLM's 256 tokens: the vector is of the beginning, and that is said
    code, out, err = run(capsys, "similarity", long, long + "zebra elephant")
    assert code == 0 and "note: 2 text(s) longer than 256 tokens" in err


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """A GGUF file cut short (20 MB, written once) and a Latin-1 text file."""
    from llmlab.packages import smollm2_gguf

    folder = tmp_path_factory.mktemp("bad")
    with open(smollm2_gguf(), "rb") as f:
        (folder / "cut.gguf").write_bytes(f.read(20_000_000))
    (folder / "latin1").write_bytes(b"caf\xe9")
    return folder


@pytest.mark.parametrize("args, message", [
    (["complete", ""], "empty input"),
    (["complete", "--model", "nope", "hi"], "unknown model 'nope'"),
    (["complete", "--model", "{d}/cut.gguf", "hi"], "truncated"),
    (["complete", "-f", "{d}/latin1"], "not valid UTF-8"),
    (["embed", "--model", "{d}", "x"], "no config.json"),
    (["similarity", "only one"], "at least two texts"),
], ids=["empty prompt", "unknown model", "cut gguf", "latin1", "bad encoder", "one text"])
def test_bad_input_is_one_line_and_exit_2(capsys, bad_files, args, message):
    code, out, err = run(capsys, *[a.format(d=bad_files) for a in args])
    assert code == 2 and err.startswith("llmlab: error: ") and message in err and err.count("\n") == 1


def test_piped_chat_goes_on_past_a_message_too_long_for_the_context(capsys, monkeypatch):
    """The long message is reported and not sent; the next one is answered; the exit status says one failed."""
    monkeypatch.setattr("sys.stdin", io.StringIO("word " * 9000 + "\nWhat is the capital of France?\n"))
    code, out, err = run(capsys, "chat", "--max-new-tokens", "8", "--temperature", "0", "--format", "json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and len(lines) == 2 and "too long" in lines[0]["error"] and "Paris" in lines[1]["assistant"]
    assert "1 message(s) not answered" in err


def test_chat_presets(capsys, monkeypatch):
    code, out, _ = run(capsys, "chat", "--list-presets")
    assert code == 0 and out.startswith("assistant") and "\nchef " in out
    monkeypatch.setattr("sys.stdin", io.StringIO("eggs, tomatoes, bread\n"))
    code, out, _ = run(capsys, "chat", "--preset", "chef", "--temperature", "0", "--max-new-tokens", "48")
    assert code == 0 and len(out.split()) > 10
    code, _, err = run(capsys, "chat", "--preset", "pirate")
    assert code == 2 and "unknown preset 'pirate' (known: assistant, chef" in err


def test_ctrl_c_in_a_terminal_chat_stops_the_answer_not_the_chat(capsys, monkeypatch, smollm2_model):
    import dataclasses

    import llmlab.weights.registry
    from tests.generate.test_chat import Interrupting

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    bundle = dataclasses.replace(smollm2_model, model=Interrupting(smollm2_model.model, at=6))
    monkeypatch.setattr(llmlab.weights.registry, "load_adapted_decoder", lambda *a, **k: bundle)
    monkeypatch.setattr("sys.stdin", Terminal("Tell me about Paris.\nSay hello.\n"))
    code, out, err = run(capsys, "chat", "--temperature", "0", "--max-new-tokens", "12")
    assert code == 0 and "[stopped]" in err and "interrupted" not in err  # (it ended the chat: exit 130)
    assert out.count("assistant> ") == 2 and "tok/s" in err


@pytest.fixture
def smollm2_served(monkeypatch, smollm2_model):
    """The CLI gets the session's SmolLM2 (fp32) instead of loading it again; the calls are kept, and a
    request for anything else (an adapter, another precision) fails the test."""
    import llmlab.weights.registry

    calls = []

    def load(name_or_path="smollm2", adapter=None, precision="fp32"):
        calls.append((str(name_or_path), adapter, precision))
        assert calls[-1] == ("smollm2", None, "fp32"), calls[-1]
        return smollm2_model

    monkeypatch.setattr(llmlab.weights.registry, "load_adapted_decoder", load)
    return calls


def test_complete_sampling_options_take_effect(capsys, smollm2_model, smollm2_served):
    m, tok = smollm2_model.model, smollm2_model.tokenizer
    prompt = "Once upon a time"

    def cli(*options):
        code, out, _ = run(capsys, "complete", "--max-new-tokens", "8", "--format", "json", *options, prompt)
        assert code == 0
        return json.loads(out)

    sampling = ["--temperature", "1", "--top-k", "5", "--top-p", "0.9"]
    expected = complete(m, tok, prompt, GenerationConfig(max_new_tokens=8, temperature=1.0, top_k=5, top_p=0.9,
                                                         seed=3))
    got = cli(*sampling, "--seed", "3")
    assert got["ids"] == expected.ids and got["text"] == expected.text
    assert cli(*sampling, "--seed", "4")["ids"] != expected.ids
    # top-k 1, or a top-p below the most likely token's probability, leaves one token: greedy's
    greedy = complete(m, tok, prompt, GenerationConfig(max_new_tokens=8)).ids
    assert greedy != expected.ids
    assert cli("--temperature", "1", "--seed", "3", "--top-k", "1")["ids"] == greedy
    assert cli("--temperature", "1", "--seed", "3", "--top-p", "0.01")["ids"] == greedy
    assert len(smollm2_served) == 4


def test_complete_stop_ends_before_the_stop_text(capsys, smollm2_model, smollm2_served):
    prompt = "Count: 1, 2, 3,"
    free = complete(smollm2_model.model, smollm2_model.tokenizer, prompt, GenerationConfig(max_new_tokens=12))
    assert " 5" in free.text and free.finish_reason == "length"
    code, out, _ = run(capsys, "complete", "--temperature", "0", "--max-new-tokens", "12", "--format", "json",
                       "--stop", "no such text", "--stop", " 5", prompt)
    doc = json.loads(out)
    assert code == 0 and doc["finish_reason"] == "stop" and doc["text"] == free.text[:free.text.index(" 5")]


SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # its template's


@pytest.mark.parametrize("options, system", [
    (["--system", "Answer in one short sentence."], "Answer in one short sentence."),
    (["--preset", "chef"], "chef"),
    ([], SMOLLM2_DEFAULT_SYSTEM),
    (["--system", ""], ""),
], ids=["system", "preset", "default", "empty"])
def test_chat_system_prompt_reaches_the_model(capsys, monkeypatch, smollm2_model, smollm2_served, options, system):
    """The prompt the chat sends is SmolLM2's ChatML, with --system's text, the preset's, or (given
    neither) the template's own default system message; --system "" leaves the message empty."""
    from llmlab.apps.presets import preset
    from llmlab.generate import ChatSession

    system = preset("chef") if system == "chef" else system
    sent, prompt_ids = [], ChatSession.prompt_ids

    def record(self):
        ids, dropped = prompt_ids(self)
        sent.append(ids)
        return ids, dropped

    monkeypatch.setattr(ChatSession, "prompt_ids", record)
    monkeypatch.setattr("sys.stdin", io.StringIO("What is the capital of France?\n"))
    code, _, _ = run(capsys, "chat", "--precision", "fp32", "--max-new-tokens", "1", *options)
    expected = (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nWhat is the capital of France?"
                "<|im_end|>\n<|im_start|>assistant\n")
    assert code == 0 and sent == [smollm2_model.tokenizer.encode(expected)]


def test_complete_with_an_adapter_is_the_merged_model(capsys, tmp_path, smollm2):
    """A LoRA adapter that changes the model (B not zero): `complete --adapter` generates what the base model
    with the adapter merged in generates, not what the base model does."""
    import torch

    from llmlab.models.decoder import Decoder, DecoderConfig
    from llmlab.nn.lora import apply_lora, load_adapter, lora_modules, save_adapter
    from llmlab.train.sft import save_decoder
    from llmlab.weights.gguf import DecoderBundle
    from llmlab.weights.registry import load_decoder

    torch.manual_seed(0)
    model = Decoder(DecoderConfig(family="llama", vocab_size=smollm2.vocab_size, dim=32, n_layers=2, n_heads=4,
                                  n_kv_heads=2, ffn_dim=64, max_seq_len=128, tie_embeddings=False)).eval()
    base = tmp_path / "base"
    save_decoder(DecoderBundle(model, smollm2, model.config, None, {}), base)
    apply_lora(model, ("q_proj", "v_proj", "up_proj", "down_proj"), r=4, alpha=8)
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.normal_(0, 0.5)
    adapter = save_adapter(model, tmp_path / "adapter", base_model="tiny")

    prompt, config = "The capital of France is", GenerationConfig(max_new_tokens=8)
    code, out, _ = run(capsys, "complete", "--model", str(base), "--adapter", str(adapter), "--max-new-tokens", "8",
                       "--format", "json", prompt)
    merged = load_decoder(str(base))
    load_adapter(merged.model, adapter, merge=True)
    ids = torch.tensor([smollm2.encode(prompt)])
    with torch.no_grad():  # merged, it computes what the adapted layers (W x + (alpha / r) B A x) do
        torch.testing.assert_close(merged.model(ids), model(ids), rtol=1e-5, atol=1e-5)
    expected = complete(merged.model, merged.tokenizer, prompt, config)
    plain = load_decoder(str(base))
    assert code == 0 and json.loads(out)["ids"] == expected.ids
    assert complete(plain.model, plain.tokenizer, prompt, config).ids != expected.ids
