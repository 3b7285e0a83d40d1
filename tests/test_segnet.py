"""segnet / unet: networks, gradient reversal, critic Lipschitz constraint, training and transfer."""

from __future__ import annotations

import pytest
import torch

from audiostyle.methods import segnet as sn


# -- networks ----------------------------------------------------------------------------------------
def _pair(skips: bool, widths=(4, 8), latent=6):
    torch.manual_seed(0)
    return sn.Encoder(widths, latent), sn.Decoder(widths, latent, skips=skips)


@pytest.mark.parametrize("skips", [False, True])
def test_encoder_decoder_shapes(skips):
    enc, dec = _pair(skips)
    x = torch.randn(3, 1, 32, 48)
    z, trace = enc(x)
    assert z.shape == (3, 6, 8, 12)
    assert [i.shape[-2:] for i in trace.indices] == [(16, 24), (8, 12)]
    assert dec(z, trace).shape == x.shape


def test_segnet_decoder_uses_only_the_code_and_the_indices():
    """SegNet passes no features from encoder to decoder: changing the skips changes nothing, and the
    first up-sampling puts values exactly at the encoder's arg-max positions (zeros elsewhere)."""
    enc, dec = _pair(skips=False)
    enc.eval(), dec.eval()
    x = torch.randn(2, 1, 32, 32)
    z, trace = enc(x)
    out = dec(z, trace)
    noisy = sn.EncoderTrace(trace.indices, [torch.randn_like(s) for s in trace.skips])
    torch.testing.assert_close(dec(z, noisy), out)
    # the first unpooling scatters into the positions the deepest max-pool picked
    up = dec.up[0](dec.from_latent(z), trace.indices[-1], output_size=trace.skips[-1].shape[-2:])
    picked = torch.zeros_like(up).flatten(2).scatter_(2, trace.indices[-1].flatten(2), 1.0).view_as(up)
    assert torch.all(up[picked == 0] == 0)


def test_unet_decoder_depends_on_the_skips():
    enc, dec = _pair(skips=True)
    enc.eval(), dec.eval()
    z, trace = enc(torch.randn(2, 1, 32, 32))
    noisy = sn.EncoderTrace(trace.indices, [torch.randn_like(s) for s in trace.skips])
    assert not torch.allclose(dec(z, noisy), dec(z, trace))


# -- gradient reversal ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_grad_reverse_flips_the_gradient_sign(scale):
    """Forward is the identity; the gradient through the layer is -scale × the true derivative, which is
    measured here by central finite differences in float64."""
    torch.manual_seed(1)
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, dtype=torch.float64)

    def f(v):
        return (torch.sin(v) * w).sum() + (v**3).sum()

    y = sn.grad_reverse(x, scale)
    torch.testing.assert_close(y, x)
    (g_rev,) = torch.autograd.grad(f(y), x)
    h = 1e-6
    numeric = torch.stack(
        [(f(x.detach() + h * e) - f(x.detach() - h * e)) / (2 * h) for e in torch.eye(5, dtype=torch.float64)]
    )
    torch.testing.assert_close(g_rev, -scale * numeric, rtol=1e-6, atol=1e-8)
    assert torch.all(torch.sign(g_rev) == -torch.sign(numeric))


# -- the critic's Lipschitz constraint ----------------------------------------------------------------------
def _clouds(n=64):
    g = torch.Generator().manual_seed(2)
    z_a = torch.randn(n, 4, 4, 4, generator=g) + 0.5
    z_b = torch.randn(n, 4, 4, 4, generator=g) * 0.5
    return z_a, z_b


def _lipschitz_estimate(critic, z_a, z_b) -> float:
    """Largest finite-difference slope |D(u) - D(v)| / ‖u - v‖ over random pairs of points around the data."""
    g = torch.Generator().manual_seed(3)
    pts = torch.cat([z_a, z_b])
    u = pts[torch.randperm(len(pts), generator=g)] + 0.1 * torch.randn(pts.shape, generator=g)
    v = pts[torch.randperm(len(pts), generator=g)]
    with torch.no_grad():
        return float(((critic(u) - critic(v)).abs() / (u - v).flatten(1).norm(dim=1)).max())


def test_weight_clipping_keeps_every_critic_weight_within_c():
    z_a, z_b = _clouds()
    torch.manual_seed(0)
    critic = sn.Critic(4, (4, 4), hidden=32)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(30):
        sn.critic_update(critic, opt, z_a, z_b, "clip", gp_weight=10.0, clip=0.01)
    assert all(p.abs().max() <= 0.01 for p in critic.parameters())
    # the clamp binds (an unconstrained critic at this lr leaves the box), and the critic still separates
    assert sum(int((p.abs() == 0.01).sum()) for p in critic.parameters()) > 100
    assert float(sn.wasserstein_estimate(critic, z_a, z_b)) > 0


def test_gradient_penalty_makes_the_critic_1_lipschitz():
    """Two separable clouds (means 4 apart): without a constraint the critic's slope keeps growing; with the
    penalty the gradient norm on interpolates settles near 1 (at 1 + ‖Δmean‖/(2·gp_weight) ≈ 1.2, the
    equilibrium of -W + 10·GP) and finite differences stay bounded."""
    z_a, z_b = _clouds()
    slopes = {}
    for name, weight in (("gp", 10.0), ("none", 0.0)):
        torch.manual_seed(0)
        critic = sn.Critic(4, (4, 4), hidden=32)
        opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
        for _ in range(150):
            sn.critic_update(critic, opt, z_a, z_b, "gp", gp_weight=weight, clip=0.01)
        slopes[name] = _lipschitz_estimate(critic, z_a, z_b)
        if name == "gp":
            eps = torch.rand(len(z_a), 1, 1, 1)
            mix = (eps * z_a + (1 - eps) * z_b).requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(mix).sum(), mix)
            norms = grad.flatten(1).norm(dim=1)
            assert 0.7 < float(norms.mean()) < 1.3, norms
    assert slopes["gp"] < 1.5
    assert slopes["none"] > 3 * slopes["gp"], slopes
