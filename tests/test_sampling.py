"""Time grids, solvers and guidance."""

from __future__ import annotations

import pytest
import torch

from lavin_cli.config import dit_preset
from lavin_cli.inference import codec, sampling
from lavin_cli.store import weights


@pytest.mark.parametrize("steps", [20, 30, 40])
def test_official_grids_are_used_exactly(steps):
    grid = sampling.time_grid(steps)
    assert grid.dtype == torch.float32 and len(grid) == steps
    assert torch.equal(grid, torch.tensor(sampling.OFFICIAL_GRIDS[steps], dtype=torch.float32))
    # the documented generic shape reproduces them closely
    assert (sampling.shaped_grid(steps) - grid).abs().max() < 1.4e-3


@pytest.mark.parametrize("steps", [2, 3, 4, 7, 10, 19, 25, 50, 100])
def test_other_counts_get_a_grid_of_the_same_shape(steps):
    grid = sampling.time_grid(steps)
    assert len(grid) == steps and grid[0] == 0 and grid[-1] == 1
    assert (grid[1:] > grid[:-1]).all()
    assert (grid[: steps // 2] <= 0.05 + 1e-7).all()


def test_too_few_steps_and_unknown_solver_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        sampling.time_grid(1)
    with pytest.raises(ValueError, match="unknown solver"):
        sampling.sample(lambda x, t: x, torch.zeros(1), 5, solver="rk4")


@pytest.mark.parametrize("solver", ["euler", "heun", "adams"])
def test_pinned_frames_follow_the_straight_path_to_what_is_known(solver):
    noise = torch.randn(2, 4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    known = torch.randn(2, 4, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    seen = []

    def v(x, t):  # a field that mixes frames, so the free ones depend on what the pinned one holds
        seen.append((x[:, :, :1].clone(), t[0].item()))
        return torch.sin(x) - x.mean(dim=2, keepdim=True)

    out = sampling.sample(sampling.pinned(v, known, noise), noise, 11, solver)
    assert torch.allclose(out[:, :, :1], known, atol=1e-5)
    for x, t in seen:  # the model always sees the pinned frame on its way to the known latent
        assert torch.allclose(x, t * known + (1 - t) * noise[:, :, :1], atol=1e-5)
    free = sampling.sample(v, noise, 11, solver)
    assert not torch.allclose(free[:, :, 1:], out[:, :, 1:])  # ...and the other frames attend to it


def test_a_bfloat16_model_does_not_round_the_pinned_path():
    noise = torch.randn(1, 4, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    known = torch.randn(1, 4, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    out = sampling.sample(sampling.pinned(lambda x, t: x.bfloat16(), known, noise), noise, 20)
    assert out.dtype == torch.float32 and torch.allclose(out[:, :, :1], known, atol=1e-6)


@pytest.mark.parametrize("solver", ["euler", "heun"])
@pytest.mark.parametrize("steps", [2, 20, 33])
def test_solvers_are_exact_on_a_constant_velocity_field(solver, steps):
    x0 = torch.randn(2, 16, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    c = torch.randn(2, 16, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    out = sampling.sample(lambda x, t: c, x0, steps, solver)
    assert torch.allclose(out, x0 + c, atol=1e-6)


def test_heun_is_exact_for_velocity_linear_in_time_and_euler_is_not():
    x0 = torch.zeros(1)
    v = lambda x, t: t.reshape(-1)  # noqa: E731  dx/dt = t  ->  x(1) = 1/2
    assert abs(sampling.sample(v, x0, 20, "heun").item() - 0.5) < 1e-6
    assert abs(sampling.sample(v, x0, 20, "euler").item() - 0.5) > 1e-3


def test_model_sees_one_float32_time_per_sample_and_each_grid_point():
    seen = []

    def v(x, t):
        assert t.dtype == torch.float32 and t.shape == (x.shape[0],)
        seen.append(t[0].item())
        return torch.zeros_like(x)

    calls = []
    sampling.sample(v, torch.zeros(3, 2), 20, callback=lambda done, total: calls.append((done, total)))
    assert seen == pytest.approx(sampling.OFFICIAL_GRIDS[20][:-1])
    assert calls[-1] == (19, 19) and len(calls) == 19


def test_guidance_combines_branches_and_skips_null_at_scale_one():
    cond = torch.randn(1, 16, 3, 4, 4)
    calls = []

    def model(x, t, c):
        calls.append(c.shape[2])
        return torch.full_like(x, float(c.shape[2]))  # "velocity" = number of condition frames

    x, t = torch.zeros(1, 16, 1, 4, 4), torch.zeros(1)
    assert torch.all(sampling.guided(model, cond, 1.0, codec.null_condition(cond))(x, t) == 3) and calls == [3]
    calls.clear()
    out = sampling.guided(model, cond, 1.5, codec.null_condition(cond))(x, t)
    assert calls == [3, 2]  # the null condition is [zeros, query]
    assert torch.allclose(out, torch.full_like(x, 2 + 1.5 * (3 - 2)))
    null = codec.null_condition(cond)
    assert torch.equal(null[:, :, 0], torch.zeros_like(null[:, :, 0])) and torch.equal(null[:, :, 1], cond[:, :, -1])


def test_seeded_sampling_is_identical_run_to_run():
    torch.manual_seed(0)
    model = weights.build(dit_preset("tiny")).eval()
    for p in model.parameters():  # the training init zeroes the output layer; give it signal
        p.data.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    cond = torch.randn(1, 16, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    def run(seed):
        noise = torch.randn(1, 16, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return sampling.sample(sampling.guided(model, cond, 1.5, codec.null_condition(cond)), noise, 10, "heun")

    a, b = run(7), run(7)
    assert torch.equal(a, b)
    assert not torch.equal(a, run(8))


def test_adams_bashforth_is_second_order_on_the_official_grid():
    """v = a + b t: the exact flow moves x by a + b/2 from t = 0 to 1. Adams-Bashforth integrates a
    velocity linear in t exactly after its Euler start; Euler does not."""
    a, b = torch.full((1, 4), 0.3), torch.full((1, 4), -2.0)
    velocity = lambda x, t: a + b * t[:, None]  # noqa: E731
    exact = a + b / 2
    errors = {name: (sampling.sample(velocity, torch.zeros(1, 4), 20, name) - exact).abs().max().item()
              for name in ("euler", "adams")}
    assert errors["adams"] < errors["euler"] / 50 and errors["adams"] < 1e-4, errors
    calls = []
    sampling.sample(lambda x, t: calls.append(1) or velocity(x, t), torch.zeros(1, 4), 10, "adams")
    assert len(calls) == 9  # one evaluation per step, as Euler


def test_guidance_only_inside_its_interval():
    seen = []

    def model(x, t, c):
        seen.append((round(float(t[0]), 4), c.shape[2]))
        return torch.zeros_like(x)

    cond = torch.randn(1, 16, 3, 4, 4)
    sampling.sample(sampling.guided(model, cond, 1.5, codec.null_condition(cond), packed=False, interval=(0.05, 1.0)),
                    torch.zeros(1, 16, 1, 4, 4), 20)
    early = [frames for t, frames in seen if t < 0.05]
    late = [frames for t, frames in seen if t >= 0.05]
    assert early and set(early) == {3}  # the null branch (2 frames) skipped before t = 0.05
    assert late.count(2) == late.count(3)  # both branches after


def test_the_condition_cache_reuses_exactly_what_a_full_pass_computed():
    torch.manual_seed(0)
    model = weights.build(dit_preset("tiny")).eval()
    for p in model.parameters():
        p.data.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    g = torch.Generator().manual_seed(3)
    cond, x = torch.randn(2, 16, 5, 8, 8, generator=g), torch.randn(2, 16, 1, 8, 8, generator=g)
    t = torch.full((2,), 0.4)
    null = codec.null_condition(cond)
    cache = model.new_cond_cache()
    with torch.no_grad():
        full = model.forward_multi(x, t, [cond, null], cache=cache)  # fills the cache
        cache.fill = False
        reused = model.forward_multi(x, t, [cond, null], cache=cache)  # the target stream alone
        plain = model.forward_multi(x, t, [cond, null])
    for a, b, c in zip(full, reused, plain):
        assert torch.equal(a, c) and torch.allclose(a, b, atol=1e-5)
    passes = []
    real = model.forward_multi
    model.forward_multi = lambda *a, **k: passes.append(k["cache"].fill) or real(*a, **k)
    with torch.no_grad():
        sampling.sample(sampling.guided(model, cond, 1.5, null, refresh=4), torch.randn(2, 16, 1, 8, 8), 20)
    assert len(passes) == 19 and sum(passes) == 5  # full passes at 0, 4, 8, 12, 16
