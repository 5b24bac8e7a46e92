"""LoRA (llmlab.nn.lora) on a tiny random Llama decoder.

HF `peft` is not installed here, so the adapted layer is checked against its formula written
out: y = x W^T + b + (alpha / r) x A^T B^T."""

import json

import pytest
import torch
from torch import nn

from llmlab.errors import LlmlabError
from llmlab.models.decoder import Decoder, DecoderConfig
from llmlab.nn.lora import (
    ADAPTER_CONFIG,
    LoRALinear,
    apply_lora,
    load_adapter,
    lora_modules,
    merge_lora,
    save_adapter,
)


def tiny(dim: int = 32, seed: int = 0) -> Decoder:
    torch.manual_seed(seed)
    cfg = DecoderConfig(family="llama", vocab_size=61, dim=dim, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
                        max_seq_len=32)
    return Decoder(cfg).eval()


def randomize_b(model: nn.Module) -> None:
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.normal_(0, 0.1)


IDS = torch.randint(0, 61, (2, 9), generator=torch.Generator().manual_seed(1))


def test_zero_b_starts_at_the_base():
    model = tiny()
    before = model(IDS)
    wrapped = apply_lora(model, ("q_proj", "v_proj"), r=4, alpha=8)
    assert wrapped == ["layers.0.self_attn.q_proj", "layers.0.self_attn.v_proj",
                       "layers.1.self_attn.q_proj", "layers.1.self_attn.v_proj"]
    assert torch.equal(model(IDS), before)


def test_formula_written_out():
    torch.manual_seed(0)
    base = nn.Linear(12, 7)
    layer = LoRALinear(base, r=3, alpha=6.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(5, 12)
    expected = x @ base.weight.T + base.bias + (6.0 / 3) * (x @ layer.lora_A.T) @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-6)
    bound = 1 / 12 ** 0.5  # Kaiming-uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in))
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.5 * bound


def test_only_a_and_b_train():
    model = tiny()
    apply_lora(model, ("q_proj", "v_proj", "down_proj"), r=2, alpha=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    assert len(trainable) == 2 * 3 * 2
    model.train()
    loss = model(IDS).logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
    assert model.layers[0].self_attn.q_proj.lora_B.grad.abs().sum() > 0


def test_merged_equals_unmerged():
    model = tiny()
    apply_lora(model, ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), r=4, alpha=16)
    randomize_b(model)
    adapted = model(IDS)
    merge_lora(model)
    assert not lora_modules(model)
    assert all(type(m) is nn.Linear for n, m in model.named_modules() if n.endswith("_proj"))
    torch.testing.assert_close(model(IDS), adapted, rtol=0, atol=1e-5)


def test_dropout_only_on_the_low_rank_path():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 8), r=2, alpha=2, dropout=0.5).train()
    x = torch.randn(4, 8)
    torch.testing.assert_close(layer(x), layer.base(x))  # B = 0: dropout cannot show


def test_save_load_round_trip(tmp_path):
    model = tiny()
    apply_lora(model, ("q_proj", "v_proj"), r=4, alpha=8, dropout=0.1)
    randomize_b(model)
    expected = model(IDS)
    save_adapter(model, tmp_path / "adapter", base_model="tiny")
    config = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG).read_text())
    assert config == {"format": "llmlab-lora", "r": 4, "alpha": 8, "dropout": 0.1,
                      "targets": ["q_proj", "v_proj"], "base_model": "tiny"}
    from safetensors.torch import load_file

    assert all(k.endswith(("lora_A", "lora_B")) for k in load_file(tmp_path / "adapter" / "adapter.safetensors"))
    fresh = tiny()  # same seed: the same base weights
    load_adapter(fresh, tmp_path / "adapter")
    torch.testing.assert_close(fresh.eval()(IDS), expected, rtol=0, atol=1e-6)
    merged = tiny()
    load_adapter(merged, tmp_path / "adapter", merge=True)
    assert not lora_modules(merged)
    torch.testing.assert_close(merged(IDS), expected, rtol=0, atol=1e-5)


def test_adapter_for_another_base_is_refused(tmp_path):
    model = tiny(dim=32)
    apply_lora(model, ("q_proj",), r=2, alpha=2)
    save_adapter(model, tmp_path, base_model="tiny-32")
    other = tiny(dim=48)
    with pytest.raises(LlmlabError, match=r"adapter for base 'tiny-32' does not fit this model: .*q_proj.lora_A"):
        load_adapter(other, tmp_path)
    assert not lora_modules(other)  # left as it was


@pytest.mark.parametrize("change, bad", [
    ({"r": "x"}, "r"), ({"r": 0}, "r"), ({"r": 2.5}, "r"), ({"alpha": None}, "alpha"), ({"alpha": "2"}, "alpha"),
    ({"dropout": 1.5}, "dropout"), ({"targets": 5}, "targets"), ({"targets": [1]}, "targets"),
])
def test_a_config_with_wrong_values_is_one_error(tmp_path, change, bad):
    model = tiny()
    apply_lora(model, ("q_proj",), r=2, alpha=2)
    save_adapter(model, tmp_path, base_model="tiny")
    config = json.loads((tmp_path / ADAPTER_CONFIG).read_text())
    (tmp_path / ADAPTER_CONFIG).write_text(json.dumps(config | change))
    fresh = tiny()
    with pytest.raises(LlmlabError, match=f"{ADAPTER_CONFIG}: bad {bad} "):
        load_adapter(fresh, tmp_path)
    assert not lora_modules(fresh)


def test_unknown_targets_name_the_layers():
    with pytest.raises(LlmlabError, match="no layer named qkv.*q_proj"):
        apply_lora(tiny(), ("qkv",))
