"""temporal_similarity(pairwise=True): every block's distance between any two steps."""

import torch

from frdiff.analysis import pairwise_change, symmetric_change, temporal_similarity


def test_symmetric_change_by_hand():
    a, b = torch.tensor([1.0, -1.0]), torch.tensor([3.0, -1.0])
    assert symmetric_change(a, b) == symmetric_change(b, a) == 1.0 / 1.5
    assert symmetric_change(torch.zeros(2), torch.zeros(2)) == 0.0
    assert symmetric_change(torch.zeros(2), a) == 2.0  # the largest value it takes
    table = pairwise_change([a, b, None, torch.ones(3)])
    assert table[0, 1] == table[1, 0] == torch.tensor(1.0 / 1.5) and table[0, 0] == 0
    assert table[2].isnan().all() and table[3, 0].isnan() and table[3, 3] == 0


def test_pairwise_tables_and_their_tie_to_change(tiny_pipe):
    steps, kwargs = 6, {"class_labels": ["A", "7"], "output_type": "pt"}
    sim = temporal_similarity(tiny_pipe, steps, pairwise=True,
                              generator=torch.Generator().manual_seed(0), **kwargs)
    plain = temporal_similarity(tiny_pipe, steps, generator=torch.Generator().manual_seed(0), **kwargs)
    assert plain.pairwise is None and plain.magnitude is None and "pairwise" not in plain.as_dict()
    assert torch.equal(sim.change, plain.change) and torch.equal(sim.cosine, plain.cosine)
    blocks = len(sim.blocks)
    p, m = sim.pairwise, sim.magnitude
    assert p.shape == (blocks, steps, steps) and m.shape == (steps, blocks)
    assert torch.isfinite(p).all() and (p >= 0).all() and torch.equal(p, p.transpose(1, 2))
    assert (p.diagonal(dim1=1, dim2=2) == 0).all()
    off = p.diagonal(offset=-1, dim1=1, dim2=2).T  # (steps - 1, blocks): entry (s, s - 1)
    expect = sim.change * 2 * m[:-1] / (m[1:] + m[:-1])  # the docstring's exact relation
    torch.testing.assert_close(off, expect, rtol=1e-5, atol=1e-7)
    ratio = off / sim.change
    assert ((ratio > 0.5) & (ratio < 2)).all()  # the same picture in a symmetric scale
    assert len(sim.as_dict()["pairwise"]) == blocks
