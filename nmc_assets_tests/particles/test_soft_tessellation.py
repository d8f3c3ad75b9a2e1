import numpy as np
import pytest
import torch

from nmc_assets.particles.soft_tessellation import soft_assignment, soft_boundary_map, sparse_boundary_map, top_k_assignment
from nmc_assets.particles.tessellation import cell_distances, hard_labels


@pytest.fixture(scope="module")
def grains(particle):
    return particle[1]


def test_cell_distances_are_differentiable(grains):
    g = grains
    seeds = torch.tensor(g.seeds, dtype=torch.float32, requires_grad=True)
    metrics = torch.tensor(g.metrics, dtype=torch.float32, requires_grad=True)
    weights = torch.tensor(g.weights, dtype=torch.float32, requires_grad=True)
    pts = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
    p = soft_assignment(pts, (seeds, metrics, weights), temperature=0.05)
    (1 - (p ** 2).sum(1)).mean().backward()
    for t in (seeds, metrics, weights):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_soft_assignment_approaches_one_hot(grains):
    g = grains
    pts = np.random.default_rng(1).uniform(-2, 2, (3000, 3)).astype(np.float32)
    hard = hard_labels(pts, g)
    errors = []
    for t in (1.0, 0.1, 0.01, 0.001):
        p = soft_assignment(torch.as_tensor(pts), g, temperature=t).numpy()
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)
        errors.append(np.abs(p - np.eye(len(g))[hard]).sum(1).mean())
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 0.05
    with pytest.raises(ValueError):
        soft_assignment(torch.as_tensor(pts), g, temperature=0.0)


def test_top_k_assignment_is_the_softmax_over_the_nearest_cells(grains):
    g = grains
    pts = torch.as_tensor(np.random.default_rng(2).uniform(-2, 2, (500, 3)))
    d = cell_distances(pts, g.seeds, g.metrics, g.weights)
    prob, ids = top_k_assignment(d, 0.05, 4, straight_through=False)
    assert prob.shape == ids.shape == (500, 4)
    assert torch.equal(ids[:, 0], d.argmin(1))
    full = torch.softmax(-d / 0.05, dim=1)
    # the four nearest cells carry (nearly) all the mass, with the full softmax's relative weights
    np.testing.assert_allclose(prob.numpy(), (torch.gather(full, 1, ids) / torch.gather(full, 1, ids).sum(1, keepdim=True)).numpy(), rtol=1e-9)
    mass = torch.gather(full, 1, ids).sum(1)
    assert float(mass.median()) > 0.999 and float(mass.min()) > 0.9  # less only where five cells meet
    st, _ = top_k_assignment(d.clone().requires_grad_(True), 0.05, 4)
    np.testing.assert_allclose(st.detach().numpy(), np.eye(4)[np.zeros(500, int)], atol=1e-15)  # straight-through: hard forward
    assert top_k_assignment(d[:, :2], 0.05, 4)[0].shape == (500, 2)


def test_sparse_boundary_map_equals_dense_one():
    g = torch.Generator().manual_seed(0)
    prob = torch.softmax(torch.randn(5, 12, 12, generator=g, dtype=torch.float64), 0)
    mask = torch.ones(12, 12, dtype=torch.bool)
    mask[:2] = False
    prob = prob * mask
    # top-k form with k = all cells, in a shuffled order per pixel
    perm = torch.argsort(torch.rand(12, 12, 5, generator=g), dim=2)
    ids = torch.where(mask[..., None], perm, torch.full_like(perm, -1))
    p_sparse = torch.gather(prob.permute(1, 2, 0), 2, perm)
    np.testing.assert_allclose(sparse_boundary_map(p_sparse, ids, mask).numpy(), soft_boundary_map(prob, mask).numpy(), atol=1e-12)
    # one grain everywhere: no boundary; two halves: 1/4 to 1/3 on the seam (4- or 3-neighbour pixels)
    one = torch.zeros(2, 6, 6, dtype=torch.float64)
    one[0] = 1
    assert float(soft_boundary_map(one, torch.ones(6, 6)).abs().max()) == 0
    half = one.clone()
    half[0, :, 3:], half[1, :, 3:] = 0, 1
    seam = soft_boundary_map(half, torch.ones(6, 6))
    assert seam[2, 2].item() == pytest.approx(0.25) and seam[0, 2].item() == pytest.approx(1 / 3) and seam[2, 0].item() == 0
