import numpy as np
import pytest

import synthetic
from memlab.crossover.approximations import nearest_neighbour_excess
from memlab.crossover.losses import level_workers, m_grid, monte_carlo_losses, naive_pmem_losses
from memlab.diffusion.process import default_grid


@pytest.fixture(scope="module")
def small():
    ds = synthetic.make_gmm(dim=8, components=3, n_train=30, n_test=5, seed=1)
    t = default_grid()[[0, 12, 25]]
    m = m_grid(30, 5)
    return ds, t, m, monte_carlo_losses(ds, t, m, draws=7, repeats=3, seed=4, chunk=16)


def test_shared_prefix_sums_equal_each_subset_evaluated_separately(small, naive_small):
    ds, t, m, tab = small
    naive = naive_small[0]
    np.testing.assert_allclose(tab.pmem_PxGxNxT, naive, rtol=1e-4, atol=1e-4)
    assert tab.draws_P.tolist() == [3, 2, 2]


def test_pmem_of_all_points_equals_mem(small):
    _, _, m, tab = small
    assert m[-1] == 30
    np.testing.assert_allclose(tab.pmem_GxNxT[-1], tab.mem_NxT, rtol=1e-5, atol=1e-5)


def test_pmem_loss_decreases_with_model_size(small):
    _, _, _, tab = small
    curve = tab.pmem_GxNxT.mean(1)[:, 2]  # a middle noise level
    assert np.all(np.diff(curve) < 0)


def test_results_do_not_depend_on_chunking(small):
    ds, t, m, tab = small
    other = monte_carlo_losses(ds, t, m, draws=7, repeats=3, seed=4, chunk=64)
    np.testing.assert_allclose(other.pmem_PxGxNxT, tab.pmem_PxGxNxT, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(other.star_NxT, tab.star_NxT, rtol=1e-5, atol=1e-6)


def test_noise_levels_run_side_by_side_give_the_same_numbers(small):
    """Threads running levels side by side (CPU) return every level in order, bit for bit what one after
    another gives, and the progress callback still counts levels in order."""
    ds, t, m, _ = small
    seen = []
    one = monte_carlo_losses(ds, t, m, draws=7, repeats=3, seed=4, chunk=16, workers=1)
    three = monte_carlo_losses(ds, t, m, draws=7, repeats=3, seed=4, chunk=16, workers=3,
                               progress=lambda i, n: seen.append((i, n)))
    for a, b in ((one.pmem_PxGxNxT, three.pmem_PxGxNxT), (one.mem_NxT, three.mem_NxT), (one.star_NxT, three.star_NxT)):
        assert np.array_equal(a, b)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert np.all(np.diff(one.star_NxT.mean(0)) != 0)  # the three levels differ: an order mix-up would show


def test_one_thread_per_process_when_asked(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert level_workers() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    assert level_workers() == 1


def test_m_grid():
    g = m_grid(100, 50)
    assert g[0] == 1 and g[-1] == 100 and len(g) == 50 and np.all(np.diff(g) > 0)
    g = m_grid(200, 30, "log")
    assert len(g) == 30 and g[-1] == 200 and np.all(np.diff(g) > 0)


def test_nearest_neighbour_excess_brute_force():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 3))
    perm = rng.permutation(9)
    got = nearest_neighbour_excess(X, perm[None], np.array([1, 4, 9]))[0]
    for value, m in zip(got, [1, 4, 9]):
        S = perm[:m]
        want = sum(min(np.sum((X[i] - X[j]) ** 2) for j in S) for i in range(9) if i not in S) / 9
        assert value == pytest.approx(want)


def test_nearest_neighbour_form_matches_monte_carlo_pmem_excess_at_low_noise():
    """In high dimension, theta_pmem(M) maps a noisy point outside the subset onto its nearest stored point;
    for t <= 0.76 the excess over theta_mem is the nearest-neighbour form within 5%."""
    ds = synthetic.make_gmm(dim=100, components=4, n_train=60, seed=0)
    t = default_grid()
    t = t[t <= 0.76]
    m = m_grid(60, 6)
    tab = monte_carlo_losses(ds, t, m, draws=12, repeats=3, seed=0)
    nn_PxG = nearest_neighbour_excess(ds.train_NxD, tab.perms_PxN, m)
    mc_PxGxT = tab.pmem_PxGxNxT.mean(2) - tab.mem_NxT.mean(0)[None, None]
    inner = m < 60
    nn = nn_PxG[:, inner].mean(0)[:, None]
    mc = mc_PxGxT[:, inner].mean(0)
    rel = np.abs(mc - nn) / nn
    assert rel.max() < 0.05, rel.max()


def _naive_mem_star(ds, t_T, draws, seed):
    """theta_mem and theta_star losses (N x T) evaluated directly on the same noise draws."""
    import jax
    import jax.numpy as jnp

    from memlab.crossover.losses import _draws
    from memlab.diffusion.denoisers import memorizing, star_denoiser
    from memlab.diffusion.process import add_noise

    X = jnp.asarray(ds.train_NxD, jnp.float32)
    N, D = X.shape
    star = star_denoiser(ds.truth)
    mem, st = np.zeros((N, len(t_T))), np.zeros((N, len(t_T)))
    for ti, t in enumerate(t_T):
        eps = _draws(jax.random.fold_in(jax.random.key(seed), ti), np.arange(N), draws, D, jnp.float32)
        x0 = jnp.repeat(X, draws, axis=0)
        xt = add_noise(x0, eps.reshape(-1, D), jnp.float32(t))
        for out, f in ((mem, lambda x: memorizing(x, jnp.float32(t), X)), (st, lambda x: star(x, jnp.float32(t)))):
            out[:, ti] = np.asarray(jnp.sum((f(xt) - x0) ** 2, axis=1)).reshape(N, draws).mean(1)
    return mem, st


@pytest.fixture(scope="module")
def naive_small(small):
    ds, t, m, tab = small
    return naive_pmem_losses(ds, t, m, draws=7, perms_PxN=tab.perms_PxN, seed=4), *_naive_mem_star(ds, t, 7, 4)


@pytest.mark.parametrize("chunk", [16, 512])
def test_optimized_losses_equal_naive_to_float32_rounding(small, naive_small, chunk):
    """Every loss of the one-program-per-noise-level computation against each subset, theta_mem and theta_star
    evaluated from scratch on the same draws, at the extremes of the grid (t = 0.999, and t = 0.001 where the
    weights are one-hot), with draws that do not divide among the permutations (7 over 3: padded, masked
    draws) and chunks that do not divide the queries (16 of 90: padded queries) or exceed them (512)."""
    ds, t, m, _ = small
    naive, mem, star = naive_small
    tab = monte_carlo_losses(ds, t, m, draws=7, repeats=3, seed=4, chunk=chunk)
    assert t[0] == pytest.approx(0.999) and t[-1] == pytest.approx(0.001)
    np.testing.assert_allclose(tab.pmem_PxGxNxT, naive, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(tab.mem_NxT, mem, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(tab.star_NxT, star, rtol=2e-5, atol=1e-6)


def test_losses_compile_once_for_datasets_of_the_same_shapes(small):
    """The ground truth is an argument of the compiled program, not a constant baked into it: a second
    dataset of the same sizes (another seed, other means) reuses the program and gets its own losses."""
    from memlab.crossover.losses import _losses_at_t

    a, t, m, _ = small
    b = synthetic.make_gmm(dim=8, components=3, n_train=30, n_test=5, seed=9)
    monte_carlo_losses(a, t, m, draws=7, repeats=3, seed=4, chunk=16)
    before = _losses_at_t._cache_size()
    tb = monte_carlo_losses(b, t, m, draws=7, repeats=3, seed=4, chunk=16)
    assert _losses_at_t._cache_size() == before
    mem, star = _naive_mem_star(b, t, 7, 4)
    np.testing.assert_allclose(tb.star_NxT, star, rtol=2e-5, atol=1e-6)  # b's truth, not a's
    np.testing.assert_allclose(tb.mem_NxT, mem, rtol=2e-5, atol=1e-6)
