"""Shared fixtures for the training tests: a small character-level token folder."""

from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample_en.txt"


@pytest.fixture(scope="session")
def char_data(tmp_path_factory) -> Path:
    """tests/data/sample_en.txt prepared at character level (90% train, 10% validation)."""
    from llmlab.train.data import prepare

    out = tmp_path_factory.mktemp("char_data")
    prepare([SAMPLE], "char", out, val_fraction=0.1, progress=False)
    return out


def tiny(data: Path, out: Path, **overrides):
    """A seconds-scale TrainConfig on ``data``."""
    from llmlab.train.pretrain import config_from

    base = dict(family="gpt2", n_layers=1, n_heads=2, dim=16, block_size=16, batch_size=4, max_iters=20,
                lr=1e-2, min_lr=1e-3, warmup=2, eval_interval=10, eval_windows=8, sample_chars=10,
                progress=False, plot=False, threads=1)
    return config_from(base, data=str(data), out=str(out), **overrides)


@pytest.fixture(autouse=True)
def _restore_threads():
    """Training runs may set torch's thread count; give the next test the count it had."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
