"""minilib.moe: router, dispatch, auxiliary losses, agreement with transformers' Mixtral block."""

import pytest
import torch
from torch import nn

from minilib.moe import (
    MoE,
    Router,
    SwiGLU,
    dispatch_loop,
    dispatch_sorted,
    load_balancing_loss,
    router_z_loss,
)


def _naive_moe(x, weights, indices, experts):
    """Per-token, per-slot reference: the definition of the MoE output, no batching at all."""
    out = torch.zeros_like(x)
    for n in range(x.shape[0]):
        for j in range(indices.shape[1]):
            out[n] += weights[n, j] * experts[int(indices[n, j])](x[n])
    return out


def _routing(n=50, c=16, e=6, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g)
    experts = nn.ModuleList(SwiGLU(c, 24) for _ in range(e))
    indices = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(n)])  # distinct
    weights = torch.rand(n, k, generator=g)
    return x, weights, indices, experts


def test_sorted_dispatch_equals_naive_per_token_loop():
    """dispatch_sorted (sort + one call per expert) == the per-token definition (fp32 1e-5)."""
    x, w, idx, experts = _routing()
    with torch.no_grad():
        torch.testing.assert_close(dispatch_sorted(x, w, idx, experts),
                                   _naive_moe(x, w, idx, experts), atol=1e-5, rtol=1e-5)


def test_loop_dispatch_equals_sorted_dispatch_with_gradients():
    """The tutorial's masked loop and the sorted dispatch agree in outputs and gradients."""
    x, w, idx, experts = _routing(n=64, e=8, k=3, seed=1)
    x1, w1 = x.clone().requires_grad_(), w.clone().requires_grad_()
    x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
    y1, y2 = dispatch_sorted(x1, w1, idx, experts), dispatch_loop(x2, w2, idx, experts)
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-5)
    (y1 ** 2).sum().backward()
    (y2 ** 2).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w1.grad, w2.grad, atol=1e-5, rtol=1e-5)


def test_dispatch_handles_unused_experts():
    """Experts that receive no token are skipped without error; the output is still exact."""
    x, w, _, experts = _routing(n=20, e=6, k=1)
    idx = torch.zeros(20, 1, dtype=torch.long)  # every token to expert 0
    with torch.no_grad():
        torch.testing.assert_close(dispatch_sorted(x, w, idx, experts),
                                   w * experts[0](x), atol=1e-6, rtol=1e-5)


def test_router_renormalises_top_k():
    """With norm_topk_prob the k weights sum to 1 and keep the softmax's ratios; without, they
    are the raw top-k softmax probabilities."""
    torch.manual_seed(0)
    x = torch.randn(30, 16)
    r = Router(16, n_experts=5, top_k=2, norm_topk_prob=True)
    logits, probs, w, idx = r(x)
    torch.testing.assert_close(w.sum(-1), torch.ones(30))
    raw = probs.gather(-1, idx)  # (N, k)
    torch.testing.assert_close(w, raw / raw.sum(-1, keepdim=True))
    assert (idx[:, 0] == probs.argmax(-1)).all()
    r.norm_topk_prob = False
    _, _, w_raw, _ = r(x)
    torch.testing.assert_close(w_raw, raw)


def test_load_balancing_loss_values():
    """E·Σ f_i P_i is k for perfectly uniform routing and E·k at total collapse on one expert."""
    n, e, k = 64, 4, 2
    uniform = torch.full((n, e), 1 / e)
    idx = torch.stack([torch.arange(k) + 2 * (i % 2) for i in range(n)])  # slots spread evenly
    assert load_balancing_loss(uniform, idx, e).item() == pytest.approx(k)
    collapsed = torch.zeros(n, e)
    collapsed[:, 0] = 1.0
    assert load_balancing_loss(collapsed, torch.zeros(n, 1, dtype=torch.long), e).item() == \
        pytest.approx(e * 1.0)


def test_z_loss_is_mean_squared_logsumexp():
    """router_z_loss = mean over tokens of logsumexp(logits)^2 (ST-MoE eq. 5)."""
    logits = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    want = (torch.log(torch.tensor(2.0)) ** 2 + torch.logsumexp(logits[1], 0) ** 2) / 2
    torch.testing.assert_close(router_z_loss(logits), want)


def test_bad_sizes_raise_value_error():
    """top_k > n_experts, top_k < 1 and n_experts < 1 are ValueErrors naming the value."""
    with pytest.raises(ValueError, match="top_k"):
        MoE(16, n_experts=2, top_k=3, expert_hidden=8)
    with pytest.raises(ValueError, match="top_k"):
        Router(16, n_experts=2, top_k=0)
    with pytest.raises(ValueError, match="n_experts"):
        MoE(16, n_experts=0, top_k=1, expert_hidden=8)
    with pytest.raises(ValueError, match="n_shared_experts"):
        MoE(16, n_experts=2, top_k=1, expert_hidden=8, n_shared_experts=-1)


def test_shared_expert_is_added_to_every_token():
    """A shared expert adds shared(x) to the routed output for every token."""
    torch.manual_seed(0)
    moe = MoE(16, n_experts=4, top_k=2, expert_hidden=8, n_shared_experts=2)
    assert moe.shared.w_gate.out_features == 16
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        y, _, _ = moe(x)
        flat = x.reshape(10, 16)
        _, _, w, idx = moe.router(flat)
        want = dispatch_sorted(flat, w, idx, moe.experts) + moe.shared(flat)
    torch.testing.assert_close(y, want.view(2, 5, 16))


@pytest.mark.parametrize("top_k", [1, 2])
def test_matches_transformers_mixtral_block_and_aux_loss(top_k):
    """With weights copied in, MoE output == MixtralSparseMoeBlock and the load-balancing loss ==
    transformers' load_balancing_loss_func (fp32, atol 1e-5)."""
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import (
        MixtralSparseMoeBlock,
        load_balancing_loss_func,
    )

    torch.manual_seed(0)
    C, F, E = 32, 48, 8
    ours = MoE(C, n_experts=E, top_k=top_k, expert_hidden=F)
    hf_cfg = MixtralConfig(hidden_size=C, intermediate_size=F, num_local_experts=E,
                           num_experts_per_tok=top_k, router_jitter_noise=0.0)
    ref = MixtralSparseMoeBlock(hf_cfg).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.2)
        ref.gate.weight.copy_(ours.router.gate.weight)
        for e, ex in enumerate(ours.experts):
            ref.experts.gate_up_proj[e].copy_(torch.cat([ex.w_gate.weight, ex.w_up.weight]))
            ref.experts.down_proj[e].copy_(ex.w_down.weight)
        x = torch.randn(3, 7, C)
        y, lb, _ = ours(x)
        y_ref = ref(x)
        logits_ref, _, _ = ref.gate(x.reshape(-1, C))
        lb_ref = load_balancing_loss_func((logits_ref,), num_experts=E, top_k=top_k)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lb, lb_ref, atol=1e-5, rtol=1e-5)


def test_aux_loss_gradient_reaches_router():
    """The load-balancing loss trains the router (through P_i), not the experts."""
    torch.manual_seed(0)
    moe = MoE(16, n_experts=4, top_k=2, expert_hidden=8)
    _, lb, z = moe(torch.randn(2, 6, 16))
    (lb + z).backward()
    assert moe.router.gate.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in moe.experts.parameters())


def test_bf16_forward_runs_and_keeps_dtype():
    """In bf16 the layer runs and returns bf16 (router softmax is done in fp32 internally)."""
    moe = MoE(16, n_experts=4, top_k=2, expert_hidden=8).to(torch.bfloat16)
    y, lb, z = moe(torch.randn(2, 5, 16, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and torch.isfinite(lb) and torch.isfinite(z)


def test_chapter_05_checkers(capsys):
    """The chapter 05 checkers pass minilib's own maths, fail a wrong answer, and never raise."""
    from minilib.checks import check_load_balancing_loss, check_route

    def route(logits, top_k, norm_topk_prob=True):
        probs = torch.softmax(logits.float(), dim=-1)
        w, i = torch.topk(probs, top_k, dim=-1)
        return (w / w.sum(-1, keepdim=True) if norm_topk_prob else w), i

    def stub(*args, **kwargs):
        raise NotImplementedError

    assert check_route(route)
    assert not check_route(lambda logits, top_k, norm_topk_prob=True: route(logits, top_k, False))
    assert check_load_balancing_loss(load_balancing_loss)
    assert not check_load_balancing_loss(lambda p, i, e: load_balancing_loss(p, i, e) / 2)
    assert not check_load_balancing_loss(stub)
    assert "not implemented yet" in capsys.readouterr().out
