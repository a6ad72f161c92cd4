"""Tests for skcream.context: Eq. 3 masks, Eq. 4 momentum update, replica sync."""

import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skcream.context import (
    ContextEmbeddings,
    cam_foreground,
    foreground_background_means,
    update_context,
)


def sequential_update(table, means, labels, valid, momentum):
    """Eq. 4 applied literally, one sample after the other, in float64."""
    table = table.clone().double()
    for i in range(len(labels)):
        if valid[i]:
            c = int(labels[i])
            table[c] = momentum * table[c] + (1 - momentum) * means[i].double()
    return table


def loop_means(features, cams, fg_threshold):
    """Eq. 3-4 means computed pixel by pixel."""
    b, d, h, w = features.shape
    fg_mean = torch.zeros(b, d, dtype=torch.float64)
    bg_mean = torch.zeros(b, d, dtype=torch.float64)
    has_fg = [False] * b
    has_bg = [False] * b
    for n in range(b):
        delta = fg_threshold * float(cams[n].max())
        nf = nb = 0
        for i in range(h):
            for j in range(w):
                if float(cams[n, i, j]) >= delta:
                    fg_mean[n] += features[n, :, i, j]
                    nf += 1
                else:
                    bg_mean[n] += features[n, :, i, j]
                    nb += 1
        if nf:
            fg_mean[n] /= nf
            has_fg[n] = True
        if nb:
            bg_mean[n] /= nb
            has_bg[n] = True
    return fg_mean, bg_mean, torch.tensor(has_fg), torch.tensor(has_bg)


def test_foreground_hand_computed_2x2():
    # max = 5, delta = 0.2 * 5 = 1 -> fg where M >= 1
    cams = torch.tensor([[[2.0, -1.0], [1.0, 5.0]]])
    assert torch.equal(cam_foreground(cams), torch.tensor([[[True, False], [True, True]]]))
    # max < 0: delta = 0.2 * (-1) = -0.2 > every value -> empty foreground
    neg = torch.tensor([[[-1.0, -2.0], [-3.0, -4.0]]])
    assert not cam_foreground(neg).any()
    # threshold 1 keeps only the maximum
    assert cam_foreground(cams, 1.0).sum() == 1


def test_means_hand_computed_2x2():
    # F channel 0 = [[1, 2], [3, 4]], channel 1 = [[10, 20], [30, 40]]; fg = {(0,0), (1,1)}
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]]])
    cams = torch.tensor([[[5.0, 0.0], [0.5, 1.0]]])  # delta = 1
    fg_mean, bg_mean, has_fg, has_bg = foreground_background_means(f, cams)
    torch.testing.assert_close(fg_mean, torch.tensor([[2.5, 25.0]]))  # (1+4)/2, (10+40)/2
    torch.testing.assert_close(bg_mean, torch.tensor([[2.5, 25.0]]))  # (2+3)/2, (20+30)/2
    assert has_fg.tolist() == [True] and has_bg.tolist() == [True]


def test_means_match_loop_and_empty_masks():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(4, 3, 3, 5, generator=g, dtype=torch.float64)
    cams = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    cams[1] = -cams[1].abs() - 0.1  # max < 0: empty foreground
    cams[2] = 2.0  # constant positive map: everything is foreground, empty background
    got = foreground_background_means(f, cams, 0.3)
    ref = loop_means(f, cams, 0.3)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b)
    assert got[2].tolist() == [True, False, True, True]
    assert got[3].tolist() == [True, True, False, True]
    assert torch.equal(got[0][1], torch.zeros(3, dtype=torch.float64))


def test_update_hand_computed_repeated_class():
    # C = 2, d = 1, lambda = 0.5; batch labels [1, 0, 1], fg means 4, 6, 8.
    # class 1: V = 0.5 * (0.5 * 2 + 0.5 * 4) + 0.5 * 8 = 5.5 ; class 0: V = 0.5 * 10 + 0.5 * 6 = 8
    fg = torch.tensor([[10.0], [2.0]])
    bg = torch.tensor([[1.0], [1.0]])
    means = torch.tensor([[4.0], [6.0], [8.0]])
    new_fg, new_bg = update_context(
        fg, bg, means, means, torch.tensor([1, 0, 1]), momentum=0.5,
        has_bg=torch.tensor([False, False, True]),
    )
    torch.testing.assert_close(new_fg, torch.tensor([[8.0], [5.5]]))
    # bg: only sample 2 counts: class 1 -> 0.5 * 1 + 0.5 * 8 = 4.5, class 0 untouched
    torch.testing.assert_close(new_bg, torch.tensor([[1.0], [4.5]]))
    assert torch.equal(fg, torch.tensor([[10.0], [2.0]]))  # inputs untouched


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 3), min_size=0, max_size=12),
    momentum=st.one_of(st.sampled_from([0.0, 0.8, 1.0]), st.floats(0.0, 1.0)),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_batched_update_equals_sequential(labels, momentum, seed, data):
    n = len(labels)
    has_fg = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    has_bg = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    g = torch.Generator().manual_seed(seed)
    fg = torch.randn(4, 3, generator=g, dtype=torch.float64)
    bg = torch.randn(4, 3, generator=g, dtype=torch.float64)
    fg_mean = torch.randn(n, 3, generator=g, dtype=torch.float64)
    bg_mean = torch.randn(n, 3, generator=g, dtype=torch.float64)
    lab = torch.tensor(labels, dtype=torch.long)
    new_fg, new_bg = update_context(
        fg, bg, fg_mean, bg_mean, lab, momentum=momentum,
        has_fg=torch.tensor(has_fg, dtype=torch.bool), has_bg=torch.tensor(has_bg, dtype=torch.bool),
    )
    torch.testing.assert_close(new_fg, sequential_update(fg, fg_mean, labels, has_fg, momentum))
    torch.testing.assert_close(new_bg, sequential_update(bg, bg_mean, labels, has_bg, momentum))


def test_update_float32_many_repeats_close_to_sequential():
    g = torch.Generator().manual_seed(3)
    fg = torch.randn(3, 8, generator=g)
    means = torch.rand(64, 8, generator=g)
    labels = torch.randint(0, 3, (64,), generator=g)
    new_fg, _ = update_context(fg, fg, means, means, labels)
    ref = sequential_update(fg, means, labels.tolist(), [True] * 64, 0.8)
    torch.testing.assert_close(new_fg.double(), ref, rtol=1e-5, atol=1e-6)


def test_update_bad_input():
    t = torch.zeros(3, 2)
    m = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"labels\[1\] = 3"):
        update_context(t, t, m, m, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="momentum"):
        update_context(t, t, m, m, torch.tensor([0, 1]), momentum=1.5)
    with pytest.raises(ValueError, match="bg_mean"):
        update_context(t, t, m, torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="has_fg"):
        update_context(t, t, m, m, torch.tensor([0, 1]), has_fg=torch.tensor([True]))
    with pytest.raises(ValueError, match="bg_ctx"):
        update_context(t, torch.zeros(3, 3), m, m, torch.tensor([0, 1]))


def test_module_init_seeded_and_distribution():
    a = ContextEmbeddings(50, 400, random_state=0)
    b = ContextEmbeddings(50, 400, random_state=0)
    c = ContextEmbeddings(50, 400, random_state=1)
    assert torch.equal(a.fg, b.fg) and torch.equal(a.bg, b.bg)
    assert not torch.equal(a.fg, c.fg) and not torch.equal(a.fg, a.bg)
    # documented: i.i.d. N(0, 1/d) -> mean 0, variance 1/d (20000 draws each)
    for t in (a.fg, a.bg):
        assert abs(float(t.mean())) < 0.005  # std of the mean: 0.05 / sqrt(20000)
        assert abs(float(t.var()) * 400 - 1.0) < 0.05
    assert set(a.state_dict()) == {"fg", "bg"}
    assert not any(True for _ in a.parameters())


def test_module_update_no_grad_and_matches_functions():
    g = torch.Generator().manual_seed(4)
    module = ContextEmbeddings(3, 5, momentum=0.7, fg_threshold=0.3, random_state=0)
    start_fg, start_bg = module.fg.clone(), module.bg.clone()
    f = torch.randn(6, 5, 4, 4, generator=g).requires_grad_()
    w = torch.randn(3, 5, generator=g, requires_grad=True)
    labels = torch.tensor([2, 2, 0, 1, 2, 0])
    cams = torch.einsum("bdhw,bd->bhw", f, w[labels])
    cams_detached = cams.detach().clone()
    cams_detached[1] = -1.0  # an empty foreground in the batch
    module.update(f, cams_detached, labels)
    assert module.fg.grad_fn is None and not module.fg.requires_grad
    fm, bm, hf, hb = foreground_background_means(f.detach(), cams_detached, 0.3)
    ref_fg = sequential_update(start_fg, fm, labels.tolist(), hf.tolist(), 0.7)
    ref_bg = sequential_update(start_bg, bm, labels.tolist(), hb.tolist(), 0.7)
    torch.testing.assert_close(module.fg.double(), ref_fg, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(module.bg.double(), ref_bg, rtol=1e-5, atol=1e-6)
    # features with a graph: update must not build one
    module.update(f, cams, labels)
    assert module.fg.grad_fn is None
    emb_fg, emb_bg = module(labels)
    assert emb_fg.shape == (6, 5) and torch.equal(emb_fg[0], module.fg[2])


def test_module_float64():
    module = ContextEmbeddings(2, 3, random_state=0).to(torch.float64)
    f = torch.rand(2, 3, 2, 2, dtype=torch.float64)
    cams = torch.rand(2, 2, 2, dtype=torch.float64)
    before = module.fg.clone()
    module.update(f, cams, torch.tensor([0, 0]))
    assert module.fg.dtype == torch.float64
    fm, _, _, _ = foreground_background_means(f, cams)
    ref = sequential_update(before, fm, [0, 0], [True, True], 0.8)
    torch.testing.assert_close(module.fg, ref, rtol=1e-12, atol=1e-12)


class FakeProcessGroup:
    """All-gather across threads: each rank contributes, every rank receives rank-major cat."""

    def __init__(self, world):
        self.world = world
        self.slots = [None] * world
        self.barrier = threading.Barrier(world)

    def gather_for(self, rank):
        def gather(t):
            self.slots[rank] = t.clone()
            self.barrier.wait()
            out = torch.cat(self.slots, dim=0)
            self.barrier.wait()  # nobody overwrites a slot before all have read
            return out
        return gather


def test_gather_hook_keeps_replicas_identical():
    g = torch.Generator().manual_seed(5)
    world = 2
    replicas = [ContextEmbeddings(4, 6, random_state=7) for _ in range(world)]
    single = ContextEmbeddings(4, 6, random_state=7)
    group = FakeProcessGroup(world)
    for _step in range(3):
        feats = [torch.randn(3, 6, 3, 3, generator=g) for _ in range(world)]
        cams = [torch.randn(3, 3, 3, generator=g) for _ in range(world)]
        cams[1][0] = -5.0  # an empty foreground on rank 1
        labels = [torch.tensor([1, 1, 3]), torch.tensor([1, 0, 3])]
        errors = []

        def run(rank, feats=feats, cams=cams, labels=labels, errors=errors):
            try:
                replicas[rank].update(feats[rank], cams[rank], labels[rank], gather=group.gather_for(rank))
            except Exception as exc:  # pragma: no cover - surfaced below
                errors.append(exc)
                group.barrier.abort()

        threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        # the one-process update on the rank-major concatenation is the same update
        single.update(torch.cat(feats), torch.cat(cams), torch.cat(labels))
        assert torch.equal(replicas[0].fg, replicas[1].fg) and torch.equal(replicas[0].bg, replicas[1].bg)
        torch.testing.assert_close(replicas[0].fg, single.fg)
        torch.testing.assert_close(replicas[0].bg, single.bg)


def test_gather_hook_bad_output():
    module = ContextEmbeddings(2, 3, random_state=0)
    calls = []

    def bad_gather(t):
        calls.append(t)
        return t if len(calls) != 5 else torch.cat([t, t])  # labels doubled, means not

    with pytest.raises(ValueError, match="gather"):
        module.update(torch.rand(2, 3, 2, 2), torch.rand(2, 2, 2), torch.tensor([0, 1]), gather=bad_gather)


def test_module_bad_input():
    with pytest.raises(ValueError, match="n_classes"):
        ContextEmbeddings(0, 3)
    with pytest.raises(TypeError, match="dim"):
        ContextEmbeddings(2, 3.0)
    with pytest.raises(ValueError, match="momentum"):
        ContextEmbeddings(2, 3, momentum=-0.1)
    with pytest.raises(TypeError, match="random_state"):
        ContextEmbeddings(2, 3, random_state="seed")
    module = ContextEmbeddings(2, 3, random_state=0)
    with pytest.raises(ValueError, match="features"):
        module.update(torch.rand(2, 4, 2, 2), torch.rand(2, 2, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="cams"):
        module.update(torch.rand(2, 3, 2, 2), torch.rand(2, 3, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels\[0\] = 2"):
        module.update(torch.rand(2, 3, 2, 2), torch.rand(2, 2, 2), torch.tensor([2, 1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_update_on_cuda_matches_cpu():
    g = torch.Generator().manual_seed(6)
    fg = torch.randn(4, 3, generator=g)
    means = torch.randn(5, 3, generator=g)
    labels = torch.tensor([0, 3, 0, 0, 1])
    cpu = update_context(fg, fg, means, means, labels)
    gpu = update_context(fg.cuda(), fg.cuda(), means.cuda(), means.cuda(), labels.cuda())
    torch.testing.assert_close(gpu[0].cpu(), cpu[0])
