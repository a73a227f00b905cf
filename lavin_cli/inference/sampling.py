"""Flow-matching sampling: time grids, ODE solvers and classifier-free guidance. Pure functions.

Linear path x_t = t * data + (1 - t) * noise: t = 0 is noise, t = 1 is data, and the model
predicts the velocity dx/dt. Sampling integrates from t = 0 to t = 1 over a time grid.

`steps` counts grid points, as in the official code: 20 steps = 20 time points = 19 solver steps
(19 model evaluations per guidance branch with Euler, 38 with Heun).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from lavin_cli import choices

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, t of shape (B,)) -> v
StepCallback = Optional[Callable[[int, int], None]]  # (steps done, total steps)

# The official grids (lib/transport/integrators.py); the official code knows no other counts.
OFFICIAL_GRIDS: dict[int, tuple[float, ...]] = {
    20: (0.0000, 0.0056, 0.0111, 0.0167, 0.0222, 0.0278, 0.0333, 0.0389, 0.0444, 0.0500,
         0.0524, 0.0730, 0.1148, 0.1777, 0.2618, 0.3671, 0.4936, 0.6412, 0.8100, 1.0000),
    30: (0.0000, 0.0036, 0.0071, 0.0107, 0.0143, 0.0179, 0.0214, 0.0250, 0.0286, 0.0321,
         0.0357, 0.0393, 0.0429, 0.0464, 0.0500, 0.0511, 0.0600, 0.0779, 0.1049, 0.1410,
         0.1862, 0.2403, 0.3036, 0.3759, 0.4573, 0.5477, 0.6472, 0.7557, 0.8733, 1.0000),
    40: (0.0000, 0.0026, 0.0053, 0.0079, 0.0105, 0.0132, 0.0158, 0.0184, 0.0211, 0.0237,
         0.0263, 0.0289, 0.0316, 0.0342, 0.0368, 0.0395, 0.0421, 0.0447, 0.0474, 0.0500,
         0.0506, 0.0555, 0.0655, 0.0804, 0.1004, 0.1253, 0.1553, 0.1902, 0.2302, 0.2752,
         0.3251, 0.3801, 0.4401, 0.5051, 0.5750, 0.6500, 0.7300, 0.8150, 0.9050, 1.0000),
}


def time_grid(steps: int) -> torch.Tensor:
    """Float32 grid of `steps` points from 0 to 1: the official table for 20, 30 and 40 steps,
    `shaped_grid(steps)` for any other count (>= 2)."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (a grid needs both ends), got {steps}")
    if steps in OFFICIAL_GRIDS:
        return torch.tensor(OFFICIAL_GRIDS[steps], dtype=torch.float32)
    return shaped_grid(steps)


def shaped_grid(steps: int) -> torch.Tensor:
    """A grid of the official shape for any count: the first n_lo = steps // 2 points uniform on
    [0, 0.05], then n_hi = steps - n_lo points t_k = 0.05 + 0.95 * ((k - 1/2) / (n_hi - 1/2))**2,
    k = 1..n_hi, whose increments grow linearly up to t = 1. For 20, 30 and 40 points it is
    within 1.4e-3 of the official tables."""
    n_lo = steps // 2
    n_hi = steps - n_lo
    lo = torch.linspace(0.0, 0.05, n_lo, dtype=torch.float64) if n_lo > 1 else torch.zeros(1, dtype=torch.float64)
    k = torch.arange(1, n_hi + 1, dtype=torch.float64)
    hi = 0.05 + 0.95 * ((k - 0.5) / (n_hi - 0.5)) ** 2
    return torch.cat([lo, hi]).to(torch.float32)


def _t(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float(t), dtype=torch.float32, device=x.device)


def _integrate(step, x: torch.Tensor, grid: torch.Tensor, callback: StepCallback, trajectory: list | None) -> torch.Tensor:
    """Walk the grid with `step(x, t0, t1) -> x`, recording states and reporting progress."""
    total = len(grid) - 1
    if trajectory is not None:
        trajectory.append(x)
    for n in range(total):
        x = step(x, grid[n], grid[n + 1])
        if trajectory is not None:
            trajectory.append(x)
        if callback:
            callback(n + 1, total)
    return x


def euler(velocity: Velocity, x: torch.Tensor, grid: torch.Tensor, callback: StepCallback = None,
          trajectory: list | None = None) -> torch.Tensor:
    """x_{n+1} = x_n + (t_{n+1} - t_n) * v(x_n, t_n) (the official fixed-grid Euler)."""
    return _integrate(lambda x, t0, t1: x + (t1 - t0) * velocity(x, _t(x, t0)), x, grid, callback, trajectory)


def heun(velocity: Velocity, x: torch.Tensor, grid: torch.Tensor, callback: StepCallback = None,
         trajectory: list | None = None) -> torch.Tensor:
    """Heun's second-order method: Euler predictor, trapezoidal corrector (2 evaluations per step)."""

    def step(x: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
        dt = t1 - t0
        k1 = velocity(x, _t(x, t0))
        k2 = velocity(x + dt * k1, _t(x, t1))
        return x + dt * 0.5 * (k1 + k2)

    return _integrate(step, x, grid, callback, trajectory)


def adams(velocity: Velocity, x: torch.Tensor, grid: torch.Tensor, callback: StepCallback = None,
          trajectory: list | None = None) -> torch.Tensor:
    """Two-step Adams-Bashforth on the velocity: one model evaluation per step, as Euler, but
    second order, reusing the previous step's velocity. On a non-uniform grid,
    x_{n+1} = x_n + h_n ((1 + r/2) v_n - (r/2) v_{n-1}) with r = h_n / h_{n-1}; the first step is
    Euler's."""
    previous: dict = {}

    def step(x: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
        h = t1 - t0
        v = velocity(x, _t(x, t0))
        if previous:
            r = h / previous["h"]
            update = (1 + r / 2) * v - (r / 2) * previous["v"]
        else:
            update = v
        previous.update(v=v, h=h)
        return x + h * update

    return _integrate(step, x, grid, callback, trajectory)


def pinned(velocity: Velocity, known: torch.Tensor, noise: torch.Tensor) -> Velocity:
    """Hold the first k target frames to latents already known, `known` (B, C, k, h, w): their
    velocity is replaced by `known - noise`, the straight path's own, so every solver keeps them at
    x_t = t * known + (1 - t) * noise and ends exactly on `known`, while the model sees them, at
    each step, as they would be on the way to that data (replacement conditioning). The other
    frames are integrated as usual, attending to the known ones."""
    k = known.shape[2]
    path = known.to(noise.dtype) - noise[:, :, :k]

    def held(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = velocity(x, t)
        dtype = torch.promote_types(v.dtype, path.dtype)  # a bf16 model must not round the known path
        return torch.cat([path.to(dtype), v[:, :, k:].to(dtype)], dim=2)

    return held


SOLVERS: dict[str, Callable] = {name: globals()[name] for name in choices.SOLVERS}  # registered in lavin_cli/choices.py


def sample(velocity: Velocity, noise: torch.Tensor, steps: int = 20, solver: str = "euler",
           callback: StepCallback = None, trajectory: list | None = None) -> torch.Tensor:
    """Integrate the flow from `noise` (t = 0) to data (t = 1); the state is kept in float32
    (float64 if the noise is float64)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    grid = time_grid(steps)
    x = noise if noise.dtype == torch.float64 else noise.float()
    return SOLVERS[solver](velocity, x, grid, callback, trajectory)


def guided(model: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
           cond: torch.Tensor, scale: float, null: torch.Tensor, packed: bool = True,
           interval: tuple[float, float] = (0.0, 1.0), refresh: int = 1) -> Velocity:
    """Classifier-free guidance: v = v_null + scale * (v_cond - v_null).

    `model(x, t, cond)` is the DiT; `null` the unconditional input (lavin_cli.inference.codec.
    null_condition). With scale == 1 the null branch is skipped (it cancels), and so it is for
    times outside `interval` (guidance only where it pays).
    When the model offers `forward_multi` (and `packed`), both branches run in one packed pass
    instead of two, as the official code does. With `refresh` > 1 and a model that keeps a
    condition cache (`new_cond_cache`), the condition tokens are computed on every `refresh`-th
    packed pass only; the passes between run the target tokens alone (an approximation).
    """
    if scale == 1.0:
        return lambda x, t: model(x, t, cond)
    multi = getattr(model, "forward_multi", None) if packed else None
    lo, hi = interval
    maker = getattr(model, "new_cond_cache", None)
    cache = maker() if refresh > 1 and maker is not None and multi is not None else None
    passes = [0]

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not lo <= float(t[0]) <= hi:
            return model(x, t, cond)
        if cache is not None:
            cache.fill = passes[0] % refresh == 0
            passes[0] += 1
            v_cond, v_null = multi(x, t, [cond, null], cache=cache)
        elif multi is not None:
            v_cond, v_null = multi(x, t, [cond, null])
        else:
            v_cond, v_null = model(x, t, cond), model(x, t, null)
        return v_null + scale * (v_cond - v_null)

    return velocity
