import jax
import jax.numpy as jnp
import numpy as np

from memlab.diffusion import process


def test_default_grid():
    t = process.default_grid()
    assert len(t) == 26 and t[0] == 0.999 and t[-1] == 0.001
    assert np.all(np.diff(t) < 0)


def test_vp_schedule_and_snr():
    t = jnp.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(process.alpha(t) ** 2 + process.sigma(t) ** 2, 1.0, rtol=1e-6)
    np.testing.assert_allclose(process.psi(t), (1 - t**2) / t**2, rtol=1e-6)


def test_eps_loss_is_psi_times_x0_loss():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.normal(k1, (64, 7))
    eps = jax.random.normal(k2, (64, 7))
    x0_hat = x0 + 0.3 * jax.random.normal(k3, (64, 7))
    for t in (0.05, 0.4, 0.95):
        xt = process.add_noise(x0, eps, t)
        eps_hat = process.eps_from_x0(xt, x0_hat, t)
        loss_eps = jnp.sum((eps_hat - eps) ** 2, 1)
        loss_x0 = jnp.sum((x0_hat - x0) ** 2, 1)
        np.testing.assert_allclose(loss_eps, process.x0_to_eps_loss(loss_x0, t), rtol=2e-4)
        np.testing.assert_allclose(process.eps_to_x0_loss(loss_eps, t), loss_x0, rtol=2e-4)
        np.testing.assert_allclose(process.x0_from_eps(xt, eps_hat, t), x0_hat, rtol=1e-3, atol=1e-4)
