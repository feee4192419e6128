import pytest
import torch

from musicgen_cli.sampling import SamplingOptions, guide, next_tokens, sample, top_k_filter, top_p_filter


def kept(logits):
    return set(torch.isfinite(logits).nonzero().flatten().tolist())


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([0.1, 3.0, -1.0, 2.0, 0.5, 2.5])
    assert kept(top_k_filter(logits, 3)) == {1, 3, 5}
    assert kept(top_k_filter(logits, 1)) == {1}
    assert kept(top_k_filter(logits, 0)) == set(range(6))  # 0 = off
    assert kept(top_k_filter(logits, 100)) == set(range(6))


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.05, 0.5, 0.1, 0.3, 0.05])
    logits = probs.log()
    assert kept(top_p_filter(logits, 0.5)) == {1}
    assert kept(top_p_filter(logits, 0.6)) == {1, 3}
    assert kept(top_p_filter(logits, 0.85)) == {1, 3, 2}
    assert kept(top_p_filter(logits, 0.0)) == set(range(5))  # 0 = off


def test_guidance_formula():
    cond, uncond = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0])
    assert torch.allclose(guide(cond, uncond, 3.0), torch.tensor([2.0, 0.0]))
    logits = torch.stack([cond, uncond])[:, None]  # rows: cond, uncond; one codebook
    assert next_tokens(logits, SamplingOptions(top_k=1, cfg=3.0), None).tolist() == [[0]]
    assert next_tokens(logits, SamplingOptions(top_k=1, cfg=1.0), None).tolist() == [[1], [1]]


def test_top_k_1_is_greedy_whatever_the_temperature():
    logits = torch.randn(64, 2048)
    for t in (0.1, 1.0, 10.0):
        assert torch.equal(sample(logits, SamplingOptions(top_k=1, temperature=t), None), logits.argmax(-1))
    assert torch.equal(sample(logits, SamplingOptions(top_k=250, temperature=0.0), None), logits.argmax(-1))


def test_seeded_draws_repeat_and_differ_between_seeds():
    logits = torch.randn(8, 2048)
    opts = SamplingOptions(top_k=250)
    a = [sample(logits, opts, torch.Generator().manual_seed(7)) for _ in range(2)]
    b = sample(logits, opts, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], a[1])
    assert not torch.equal(a[0], b)


def test_draws_follow_the_filtered_distribution():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -5.0])
    opts = SamplingOptions(top_k=3, temperature=0.5)
    draws = sample(logits.expand(40000, -1), opts, torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=5).float() / len(draws)
    expected = torch.softmax(torch.tensor([2.0, 1.0, 0.0]) / 0.5, -1)
    assert counts[3:].sum() == 0
    assert torch.allclose(counts[:3], expected, atol=0.01)


@pytest.mark.parametrize("kw", [dict(top_k=-1), dict(top_p=1.5), dict(temperature=-1.0), dict(cfg=-2.0)])
def test_bad_options_are_refused(kw):
    with pytest.raises(ValueError):
        SamplingOptions(**kw)
