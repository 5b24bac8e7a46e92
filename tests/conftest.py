"""Session-wide fixtures: real tokenizers loaded once, reference oracles, data locations."""

import os
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


def shared_data_texts(max_chunk: int = 1 << 16):
    """(name, text) for every file of ../shared/data (zip members included), cut into
    chunks of about 64 KB at line ends; undecodable bytes become U+FFFD."""
    def chunks(name, data: bytes):
        text = data.decode("utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        buf, size, k = [], 0, 0
        for line in lines:
            buf.append(line)
            size += len(line)
            if size >= max_chunk:
                yield f"{name}#{k}", "".join(buf)
                buf, size, k = [], 0, k + 1
        if buf:
            yield f"{name}#{k}", "".join(buf)

    for path in sorted(SHARED_DATA.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(SHARED_DATA))
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                for member in z.namelist():
                    if not member.endswith("/"):
                        yield from chunks(f"{rel}:{member}", z.read(member))
        else:
            yield from chunks(rel, path.read_bytes())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not present at {SHARED_DATA} (only on development machines)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2():
    from llmlab.tokenize import load_tokenizer

    return load_tokenizer("smollm2")


@pytest.fixture(scope="session")
def smollm2_oracle():
    """HF `tokenizers` reading SmolLM2's vocabulary and merges out of the same GGUF file
    (through `transformers`' GGUF converter), with the pre-tokenizer of SmolLM2's
    published tokenizer.json: Sequence[Digits(individual_digits=True), ByteLevel].
    The converter leaves out the Digits step, which GGUF records as pre-type "smollm"."""
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    from llmlab.packages import smollm2_gguf

    path = smollm2_gguf()
    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).backend_tokenizer
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    hf.no_truncation()
    hf.no_padding()
    return hf


@pytest.fixture(scope="session")
def minilm():
    from llmlab.tokenize import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture(scope="session")
def smollm2_model():
    """Our SmolLM2 decoder bundle (model, tokenizer, config, chat template), loaded once."""
    from llmlab.weights.registry import load_decoder

    return load_decoder("smollm2")


@pytest.fixture(scope="session")
def smollm2_int4():
    """SmolLM2 at int4, the copy the apps load when given no model (as `llmlab chat` runs it)."""
    from llmlab.apps.bundled import chat_decoder

    return chat_decoder()


@pytest.fixture(scope="session")
def hf_smollm2():
    """HF transformers' LlamaForCausalLM on the same GGUF file, dequantized to float32."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmlab.packages import smollm2_gguf

    path = smollm2_gguf()
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return model.eval()
