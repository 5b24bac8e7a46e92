"""Muon and the two-optimizer chain (llmlab.train.optim), against torch's own Muon."""

import copy

import pytest
import torch
from torch import nn

from llmlab.errors import LlmlabError
from llmlab.models.decoder import Decoder, DecoderConfig
from llmlab.train.optim import Chain, Muon, Schedule, build_optimizer, orthogonalize, set_lr


def test_orthogonalize_flattens_the_spectrum_and_keeps_the_singular_vectors():
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))
    V, _ = torch.linalg.qr(torch.randn(96, 32, generator=g))
    S = torch.logspace(-1, 1, 32)  # singular values over two decades
    G = U @ torch.diag(S) @ V.T  # (32, 96)
    ortho = orthogonalize(G)
    s = torch.linalg.svdvals(ortho)
    assert s.min() > 0.5 and s.max() < 1.3, s
    target = U @ V.T  # the exact orthogonal factor
    cos = (ortho * target).sum() / (ortho.norm() * target.norm())
    assert cos > 0.95
    # batched: each matrix of a stack is treated on its own
    both = orthogonalize(torch.stack([G, 3 * G.flip(0)]))
    assert torch.allclose(both[0], ortho, atol=1e-5) and torch.allclose(both[1], ortho.flip(0), atol=1e-4)


def test_muon_equals_torch_muon():
    torch.manual_seed(0)
    shapes = [(24, 40), (40, 24), (32, 32), (24, 40)]  # wide, tall, square, and a second of one shape
    ours = [nn.Parameter(torch.randn(s)) for s in shapes]
    ref = [nn.Parameter(p.detach().clone()) for p in ours]
    opt = Muon(ours, lr=0.02, momentum=0.95, weight_decay=0.1, dtype=torch.bfloat16)
    peer = torch.optim.Muon(ref, lr=0.02, momentum=0.95, weight_decay=0.1, nesterov=True)
    for _ in range(5):
        grads = [torch.randn(s) for s in shapes]
        for p, q, gr in zip(ours, ref, grads):
            p.grad, q.grad = gr.clone(), gr.clone()
        opt.step()
        peer.step()
    for p, q in zip(ours, ref):
        assert torch.allclose(opt.state[p]["momentum_buffer"], peer.state[q]["momentum_buffer"], atol=1e-6)
        # both orthogonalise in bfloat16 (ours batched by shape): equal to bf16 rounding of each step
        assert (p.detach() - q.detach()).abs().max() < 2e-3, (p.detach() - q.detach()).abs().max()


def tiny_decoder(tied: bool = True) -> Decoder:
    torch.manual_seed(0)
    return Decoder(DecoderConfig(vocab_size=40, dim=32, n_layers=2, n_heads=2, family="gpt2", max_seq_len=16,
                                 tie_embeddings=tied))


def test_build_optimizer_gives_block_matrices_to_muon_and_the_rest_to_adamw():
    model = tiny_decoder(tied=False)
    chain = build_optimizer(model, "muon", lr=1e-3, weight_decay=0.1, muon_lr=0.02)
    assert isinstance(chain, Chain)
    muon, adamw = chain.optimizers
    names = {id(p): n for n, p in model.named_parameters()}
    in_muon = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    in_adamw = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert in_muon == {n for n, p in model.named_parameters() if p.ndim == 2 and n.startswith("layers.")}
    assert in_muon.isdisjoint(in_adamw) and in_muon | in_adamw == set(names.values())
    assert "lm_head.weight" in in_adamw and "embed_tokens.weight" in in_adamw
    decayed = {names[id(p)] for g in adamw.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {"lm_head.weight"}  # the untied head; embeddings, norms, biases are not decayed
    set_lr(chain, 5e-4)  # half the peak: both optimizers follow one schedule
    assert muon.param_groups[0]["lr"] == pytest.approx(0.01)
    assert all(g["lr"] == pytest.approx(5e-4) for g in adamw.param_groups)


def step_losses(model, opt, batches):
    losses = []
    for x in batches:
        loss = nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def test_chain_state_round_trip_continues_exactly_and_refuses_another_setup():
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 40, (4, 17), generator=g) for _ in range(6)]
    model = tiny_decoder()
    opt = build_optimizer(model, "muon", lr=3e-3, muon_lr=0.02)
    step_losses(model, opt, batches[:3])
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved_opt = copy.deepcopy(opt.state_dict())
    straight = step_losses(model, opt, batches[3:])

    again = tiny_decoder()
    again.load_state_dict(saved_model)
    opt2 = build_optimizer(again, "muon", lr=3e-3, muon_lr=0.02)
    opt2.load_state_dict(saved_opt)
    assert step_losses(again, opt2, batches[3:]) == straight
    assert straight[-1] < step_losses(tiny_decoder(), build_optimizer(tiny_decoder(), "muon"), batches[:1])[0]

    with pytest.raises(LlmlabError, match="another optimizer"):
        build_optimizer(tiny_decoder(), "muon").load_state_dict(build_optimizer(tiny_decoder(), "adamw").state_dict())
    with pytest.raises(LlmlabError, match="unknown optimizer"):
        build_optimizer(tiny_decoder(), "sgd")


def test_warmup_stable_decay_schedule():
    s = Schedule(lr=1.0, min_lr=0.1, warmup=10, decay_steps=110, cooldown=0.4)  # hold 60 steps, fall over 40
    assert s.lr_at(0) == pytest.approx(0.1) and s.lr_at(9) == pytest.approx(1.0)
    assert s.lr_at(10) == s.lr_at(69) == pytest.approx(1.0)
    assert s.lr_at(70) == pytest.approx(1.0) and s.lr_at(90) == pytest.approx(0.55)
    assert s.lr_at(110) == pytest.approx(0.1) and s.lr_at(500) == pytest.approx(0.1)
    steps = [s.lr_at(i) for i in range(70, 111)]
    assert all(a > b for a, b in zip(steps, steps[1:]))  # strictly falling through the cool-down
