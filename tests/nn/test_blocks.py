"""Building blocks against their reference implementations, on small random inputs."""

import torch
import torch.nn.functional as F

from llmlab.nn.attention import Attention, KVCache, reference_attention, sdpa_attention
from llmlab.nn.feedforward import SwiGLU
from llmlab.nn.norms import RMSNorm
from llmlab.nn.positions import RotaryEmbedding, apply_rope

torch.manual_seed(0)


def test_rmsnorm_matches_transformers():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    ours, theirs = RMSNorm(16, eps=1e-5), LlamaRMSNorm(16, eps=1e-5)
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_rope_matches_transformers():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as hf_apply

    cfg = LlamaConfig(hidden_size=64, num_attention_heads=4, rope_theta=100000.0, max_position_embeddings=128)
    positions = torch.arange(3, 10)[None]
    q, k = torch.randn(1, 4, 7, 16), torch.randn(1, 4, 7, 16)
    cos, sin = RotaryEmbedding(16, 100000.0)(positions)
    hcos, hsin = LlamaRotaryEmbedding(cfg)(q, positions)
    hq, hk = hf_apply(q, k, hcos, hsin)
    torch.testing.assert_close(apply_rope(q, cos, sin), hq)
    torch.testing.assert_close(apply_rope(k, cos, sin), hk)


def test_rope_scores_depend_on_distance_only():
    rope = RotaryEmbedding(8)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(i, j):
        qi = apply_rope(q, *rope(torch.tensor([[i]])))
        kj = apply_rope(k, *rope(torch.tensor([[j]])))
        return (qi * kj).sum()

    torch.testing.assert_close(score(5, 2), score(105, 102))


def test_sdpa_equals_reference_with_gqa_and_masks():
    q, k, v = torch.randn(2, 6, 5, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    torch.testing.assert_close(sdpa_attention(q, k, v, None, True), reference_attention(q, k, v, None, True))
    mask = torch.rand(2, 1, 5, 5) > 0.3
    mask |= torch.eye(5, dtype=torch.bool)
    torch.testing.assert_close(sdpa_attention(q, k, v, mask, False), reference_attention(q, k, v, mask, False))


def test_cached_attention_equals_full():
    attn = Attention(dim=32, n_heads=4, n_kv_heads=2, head_dim=8)
    x = torch.randn(1, 6, 32)
    full = attn(x)  # causal over all 6 positions
    cache = KVCache(1, 1, 2, 8, max_len=6)
    steps = []
    for t in range(6):
        steps.append(attn(x[:, t:t + 1], cache=cache))
        cache.length += 1
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-6)


def test_swiglu_equation():
    mlp = SwiGLU(8, 16)
    x = torch.randn(3, 8)
    expected = mlp.down_proj.weight @ (F.silu(mlp.gate_proj.weight @ x.T) * (mlp.up_proj.weight @ x.T))
    torch.testing.assert_close(mlp(x), expected.T)


def test_rmsnorm_fused_equals_reference():
    norm = RMSNorm(32, eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 7, 32)
    torch.testing.assert_close(norm(x), norm.reference(x), rtol=1e-6, atol=1e-6)


def test_int8_blocks_stay_close_to_float32():
    from llmlab.nn.quantized import Int8Linear, QuantizedAttention, QuantizedSwiGLU

    lin = torch.nn.Linear(64, 48, bias=False)
    x = torch.randn(5, 64)
    err = (Int8Linear(lin.weight)(x) - lin(x)).norm() / lin(x).norm()
    assert err < 0.01  # int8 rows + bfloat16 activations: well under 1% relative error
    attn, mlp = Attention(dim=64, n_heads=4, n_kv_heads=2, head_dim=16), SwiGLU(64, 128)
    x = torch.randn(2, 6, 64)
    for ref, fast in ((attn, QuantizedAttention(attn)), (mlp, QuantizedSwiGLU(mlp))):
        with torch.no_grad():
            assert (fast(x) - ref(x)).norm() / ref(x).norm() < 0.02


def test_int8_head_refines_its_top_logits_in_float32():
    from llmlab.nn.quantized import Int8Linear

    torch.manual_seed(0)
    weight = torch.randn(4096, 64)
    x = torch.randn(2, 64) * 4  # logits of tens: bfloat16 keeps steps of 0.125 there
    plain, head = Int8Linear(weight), Int8Linear(weight, refine=16)
    exact = x @ (plain.weight_int8.float() * plain.scale.float()[:, None]).T  # the int8 weights in float32
    rounded = plain(x)
    assert torch.equal(rounded, rounded.to(torch.bfloat16).float())  # the kernel's bfloat16 output
    y = head(x)
    top = exact.topk(16, dim=-1).indices
    torch.testing.assert_close(y.gather(-1, top), exact.gather(-1, top), rtol=1e-5, atol=1e-4)
    assert torch.equal(y.argmax(-1), exact.argmax(-1))
    rest = torch.ones_like(y, dtype=torch.bool).scatter(-1, top, False)
    assert torch.equal(y[rest], rounded[rest])  # the unlikely tokens keep the fast values


def test_int4_holds_q4_1_style_weights_without_loss():
    from llmlab.nn.quantized import Int4Linear, QuantizedAttention, QuantizedSwiGLU

    # weights built like a Q4_1 block: w = d * q + m with q in 0..15 and both 0 and 15 present
    q = torch.randint(0, 16, (128, 4, 32))
    q[..., 0], q[..., 1] = 0, 15
    d, m = torch.rand(128, 4, 1) * 0.1 + 0.01, torch.randn(128, 4, 1) * 0.1
    w = (d * q + m).view(128, 128)
    lin = Int4Linear(w)
    tol = 2 * 2 ** -8 * (d.max() * 15 + m.abs().max())  # bfloat16 rounding of scale and min only
    assert (lin.dequantize() - w).abs().max() < tol
    x = torch.randn(3, 128)
    many = torch.randn(40, 128)  # more than 16 rows: the dequantize + float32 path
    assert (lin(x) - x @ w.T).norm() / (x @ w.T).norm() < 0.01
    torch.testing.assert_close(lin(many), many @ lin.dequantize().T)
    # the unpacking reads the CPU kernel's layout: the codes come back exactly, in their rows and groups
    scale, zero = lin.scale_zero.float().transpose(0, 1).unbind(-1)  # (128, 4) each
    assert torch.equal(lin.dequantize(), ((q.float() - 8) * scale[..., None] + zero[..., None]).view(128, 128))
    attn, mlp = Attention(dim=64, n_heads=4, n_kv_heads=2, head_dim=16), SwiGLU(64, 128)
    x = torch.randn(2, 6, 64)
    for ref, fast in ((attn, QuantizedAttention(attn, "int4")), (mlp, QuantizedSwiGLU(mlp, "int4"))):
        with torch.no_grad():
            # random uniform weights at 4 bits: ~7% noise per matmul, two matmuls in a row
            assert (fast(x) - ref(x)).norm() / ref(x).norm() < 0.15


def test_float_weights_gives_the_same_prompt_outputs_and_lets_go():
    from llmlab.nn.quantized import QuantizedAttention, QuantizedSwiGLU, float_weights

    torch.manual_seed(0)
    model = torch.nn.Sequential(QuantizedSwiGLU(SwiGLU(64, 128), "int4"), QuantizedSwiGLU(SwiGLU(64, 128), "int8"))
    attn = QuantizedAttention(Attention(dim=64, n_heads=4, n_kv_heads=2, head_dim=16), "int4")
    prompt, step = torch.randn(1, 40, 64), torch.randn(1, 1, 64)  # 40 rows: the dequantizing path
    with torch.no_grad():
        before, before_step = model(prompt), model(step)
        with float_weights(model):
            assert all(m.keep for m in model.modules() if hasattr(m, "held"))
            with float_weights(model):  # nested: shares the weights, and the outer block keeps them
                pass
            assert all(m.keep for m in model.modules() if hasattr(m, "held"))
            assert torch.equal(model(prompt), before)
            assert torch.equal(model(step), before_step)  # a token at a time: still the int kernels
            assert all(m.held is not None for m in model.modules() if hasattr(m, "held"))  # made once used
            held = model[0].down_proj.held
            assert torch.equal(model(prompt), before) and model[0].down_proj.held is held  # and not made again
            assert not attn.qkv_proj.keep and attn.qkv_proj.held is None  # only the model named is touched
        assert all(m.held is None for m in model.modules() if hasattr(m, "held"))
        try:
            with float_weights(model):
                model(prompt)
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        assert all(m.held is None for m in model.modules() if hasattr(m, "held"))  # released on the way out
        dense = SwiGLU(64, 128)
        with float_weights(dense) as same:  # a float32 model passes through
            assert same is dense


def test_float_weights_blocks_in_two_threads_share_one_model():
    import threading

    from llmlab.nn.quantized import QuantizedSwiGLU, float_weights

    torch.manual_seed(0)
    model = QuantizedSwiGLU(SwiGLU(64, 128), "int4")
    prompt = torch.randn(1, 40, 64)
    with torch.no_grad():
        expected = model(prompt)
        entered, leave, results = threading.Event(), threading.Event(), []

        def other():
            with float_weights(model):
                results.append(model(prompt))
                entered.set()
                leave.wait()

        worker = threading.Thread(target=other)
        worker.start()
        entered.wait()
        with float_weights(model):
            held = model.down_proj.held
            leave.set()
            worker.join()  # the other block ends first: this one still holds the weights
            assert model.down_proj.held is held is not None and model.down_proj.keep == 1
            assert torch.equal(model(prompt), expected) and torch.equal(results[0], expected)
        assert model.down_proj.keep == 0 and model.down_proj.held is None


def test_float_weights_every_call_gives_float32_for_few_rows_in_this_thread_only():
    import threading

    import torch.nn.functional as F

    from llmlab.nn.quantized import Int4Linear, Int8Linear, float_weights

    torch.manual_seed(0)
    for layer in (Int4Linear(torch.randn(128, 64)), Int8Linear(torch.randn(128, 64), refine=8)):
        step = torch.randn(1, 3, 64)  # 3 rows: the int kernels (bfloat16) outside the block
        with torch.no_grad():
            exact, kernel = F.linear(step, layer.dequantize()), layer(step)
            assert not torch.equal(kernel, exact)
            with float_weights(layer, every_call=True):
                assert torch.equal(layer(step), exact)
                other = []
                worker = threading.Thread(target=lambda f=layer, x=step, out=other: out.append(f(x)))  # as before
                worker.start()
                worker.join()
                assert torch.equal(other[0], kernel)
                with float_weights(layer):  # a plain block inside keeps this thread's float32
                    assert torch.equal(layer(step), exact)
                assert torch.equal(layer(step), exact)
            assert torch.equal(layer(step), kernel) and layer.held is None

            def job(f, x):  # a generator holding a block, closed from another thread
                with float_weights(f, every_call=True):
                    yield f(x)

            running = job(layer, step)
            assert torch.equal(next(running), exact)
            closer = threading.Thread(target=running.close)
            closer.start()
            closer.join()
            assert not layer.keep and layer.held is None and torch.equal(layer(step), kernel)
