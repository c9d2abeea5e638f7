"""Exact dynamic programming: policy evaluation, policy iteration, modified policy iteration,
value iteration and Q-value iteration. Every solver returns a `PlanningResult`.

Stopping rule (Puterman 1994, §6.6.3, after MacQueen and Porteus). After a sweep V' = B V with
differences d = V' − V, the fixed point V* lies between V' + lo and V' + hi, where

    lo = ρ/(1−ρ) · min d,   hi = ρ/(1−ρ) · max d

and ρ is γ times the probability that the episode goes on (its smallest or largest value over
states and actions, whichever makes the bound valid for the sign of min d / max d). A solver stops
when (hi − lo)/2 ≤ tolerance and returns the midpoint V' + (lo + hi)/2, so that

    max_s |V(s) − V*(s)| ≤ tolerance

is guaranteed, not hoped for. Because the bounds use the *spread* of d rather than its largest
entry, they close long before ‖d‖∞ has shrunk by γᵏ: about 20 sweeps instead of about 400 on the
benchmark's random MDP (γ = 0.95, tolerance 1e-8; benchmarks/results/planning.json). With γ = 1 and episodes that may go on with probability 1
the bounds are infinite; solvers then stop when ‖d‖∞ ≤ tolerance and report no error bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from nextbest.errors import ConfigError
from nextbest.planning.mdp import FiniteMDP, PlanningError, plain_label
from nextbest.planning.operators import greedy_policy, policy_improvement, q_values, row_max
from nextbest.planning.termination import _states, proper_policy, require_proper

Callback = Callable[[int, float], None]  # (iteration, largest change of that sweep)


@dataclass
class PlanningResult:
    """values: (S,); q_values: (S, A) one-step lookahead on `values`; policy: (S,) greedy action on
    q_values; iterations: sweeps (value and Q-value iteration, iterative evaluation) or policy
    improvements (policy iteration, modified policy iteration); residual: ‖B V − V‖∞ of the returned
    values (B = B_* for control, B_π for evaluation); error_bound: guaranteed max |V − V*| (or V_π)
    when known; sweeps: Bellman sweeps (sparse matrix-vector products) in all, including the final
    lookahead that computes q_values (policy iteration: exact evaluations)."""

    method: str
    values: np.ndarray
    q_values: np.ndarray
    policy: np.ndarray
    iterations: int
    residual: float
    seconds: float
    converged: bool
    error_bound: float | None
    sweeps: int
    gamma: float

    def to_dict(self, mdp: FiniteMDP) -> dict[str, Any]:
        return {
            "method": self.method, "gamma": self.gamma, "values": self.values, "policy": self.policy,
            "q_values": self.q_values, "iterations": self.iterations, "residual": self.residual,
            "seconds": self.seconds, "converged": self.converged, "error_bound": self.error_bound,
            "sweeps": self.sweeps, "states": [plain_label(s) for s in mdp.states], "actions": [plain_label(a) for a in mdp.actions],
            "terminal": np.flatnonzero(mdp.terminal),
        }


class _Bounds:
    """Where the fixed point of B lies, from the last sweep's differences (see the module docstring)."""

    def __init__(self, rates: np.ndarray):
        self.low, self.high = (float(rates.min()), float(rates.max())) if rates.size else (0.0, 0.0)

    def check(self, d: np.ndarray, tolerance: float) -> tuple[bool, float, float | None]:
        """(stop, shift to add to the new iterate, guaranteed error after the shift)."""
        if d.size == 0:
            return True, 0.0, 0.0
        d_min, d_max = float(d.min()), float(d.max())
        lo = _tail(self.low if d_min >= 0 else self.high, d_min)
        hi = _tail(self.high if d_max >= 0 else self.low, d_max)
        if math.isfinite(lo) and math.isfinite(hi):
            return (hi - lo) / 2 <= tolerance, (lo + hi) / 2, (hi - lo) / 2
        return max(-d_min, d_max) <= tolerance, 0.0, None


def _tail(rate: float, x: float) -> float:
    """Σ_{j≥1} rateʲ · x."""
    if x == 0:
        return 0.0
    return x * rate / (1 - rate) if rate < 1 else math.copysign(math.inf, x)


def value_iteration(mdp: FiniteMDP, *, tolerance: float = 1e-8, max_iterations: int = 100_000,
                    values: np.ndarray | None = None, callback: Callback | None = None) -> PlanningResult:
    """V ← B_* V from `values` (default 0) until max |V − V*| ≤ tolerance is guaranteed."""
    started, live, bounds = _start(mdp, max_iterations)
    V = np.zeros(mdp.n_states) if values is None else np.array(values, dtype=np.float64)
    run = _iterate(lambda V: row_max(q_values(mdp, V)), V, live, bounds, tolerance, max_iterations, callback)
    _not_converged(mdp, "value iteration", run, live)
    return _finish(mdp, "value-iteration", run.x, started, iterations=run.k, sweeps=run.k + 1,
                   converged=run.converged, error_bound=run.error)


def q_value_iteration(mdp: FiniteMDP, *, tolerance: float = 1e-8, max_iterations: int = 100_000,
                      callback: Callback | None = None) -> PlanningResult:
    """Q(s, a) ← r(s, a) + γ Σ_s' p(s'|s,a) max_a' Q(s', a') from Q = 0, with the same guarantee on Q."""
    started, live, bounds = _start(mdp, max_iterations)
    Q = np.zeros((mdp.n_states, mdp.n_actions))
    run = _iterate(lambda Q: q_values(mdp, row_max(Q)), Q, live, bounds, tolerance, max_iterations, callback)
    _not_converged(mdp, "Q-value iteration", run, live)
    return _finish(mdp, "q-value-iteration", row_max(run.x), started, iterations=run.k, sweeps=run.k + 1,
                   converged=run.converged, error_bound=run.error)


def policy_evaluation(mdp: FiniteMDP, policy: np.ndarray, *, exact: bool = True, tolerance: float = 1e-8,
                      max_iterations: int = 100_000, callback: Callback | None = None) -> PlanningResult:
    """V_π of a deterministic (S,) or stochastic (S, A) policy: by a sparse linear solve of
    (I − γ P_π) V = r_π (exact), or by V ← B_π V until max |V − V_π| ≤ tolerance (iterative).
    The result's `policy` is the greedy (improved) policy on Q_π."""
    started, live, _ = _start(mdp, max_iterations, check_episodes=False)
    require_proper(mdp, policy)
    if exact:
        return _finish(mdp, "policy-evaluation", _solve(mdp, policy), started, iterations=1, sweeps=1,
                       converged=True, error_bound=0.0, evaluated=policy)
    p_pi, r_pi = mdp.policy_model(policy)
    bounds = _Bounds(mdp.gamma * (p_pi @ (~mdp.terminal).astype(float))[live])
    run = _iterate(lambda V: r_pi + mdp.gamma * (p_pi @ V), np.zeros(mdp.n_states), live, bounds, tolerance,
                   max_iterations, callback)
    return _finish(mdp, "policy-evaluation", run.x, started, iterations=run.k, sweeps=run.k + 1,
                   converged=run.converged, error_bound=run.error, evaluated=policy)


def policy_iteration(mdp: FiniteMDP, *, policy: np.ndarray | None = None, tolerance: float = 1e-8,
                     max_iterations: int = 1_000, callback: Callback | None = None) -> PlanningResult:
    """Howard's policy iteration: evaluate π exactly, improve greedily, stop when π is stable.
    `policy` is the starting policy (default: greedy on immediate rewards, or, with γ = 1, a policy
    that ends every episode). `tolerance` is unused: evaluation is exact, so the result is too."""
    started, _, _ = _start(mdp, max_iterations, check_episodes=False)
    if policy is None:
        policy = proper_policy(mdp) if mdp.gamma == 1 else mdp.rewards.argmax(axis=1)
    for k in range(1, max_iterations + 1):
        require_proper(mdp, policy, "policy iteration's policy" if k > 1 else "the starting policy")
        V = _solve(mdp, policy)
        improved = policy_improvement(mdp, V, policy)
        if callback is not None:
            callback(k, float(np.count_nonzero(improved != policy)) if np.ndim(policy) == 1 else math.nan)
        if np.ndim(policy) == 1 and np.array_equal(improved, policy):
            return _finish(mdp, "policy-iteration", V, started, iterations=k, sweeps=k, converged=True,
                           error_bound=0.0, keep=policy)
        policy = improved
    return _finish(mdp, "policy-iteration", V, started, iterations=max_iterations, sweeps=max_iterations,
                   converged=False, error_bound=None)


def modified_policy_iteration(mdp: FiniteMDP, *, tolerance: float = 1e-8, max_iterations: int = 100_000,
                              evaluation_sweeps: int = 10, callback: Callback | None = None) -> PlanningResult:
    """Puterman's modified policy iteration: improve greedily (one B_* sweep), then evaluate only
    partially with `evaluation_sweeps` − 1 cheaper B_π sweeps; same stopping guarantee as value iteration."""
    if evaluation_sweeps < 1:
        raise ConfigError(f"evaluation_sweeps must be at least 1, got {evaluation_sweeps}")
    started, live, bounds = _start(mdp, max_iterations)
    greedy: list[np.ndarray | None] = [None]

    def improve(V: np.ndarray) -> np.ndarray:  # B_* V, remembering its greedy policy
        q = q_values(mdp, V)
        greedy[0] = greedy_policy(q, greedy[0])
        return row_max(q)

    def evaluate_partially(V: np.ndarray) -> np.ndarray:  # (B_π)^(m−1) V
        p_pi, r_pi = mdp.policy_model(greedy[0])
        for _ in range(evaluation_sweeps - 1):
            V = r_pi + mdp.gamma * (p_pi @ V)
        return V

    run = _iterate(improve, np.zeros(mdp.n_states), live, bounds, tolerance, max_iterations, callback, then=evaluate_partially)
    _not_converged(mdp, "modified policy iteration", run, live)
    return _finish(mdp, "modified-policy-iteration", run.x, started, iterations=run.k,
                   sweeps=run.k + (run.k - 1) * (evaluation_sweeps - 1) + 1, converged=run.converged, error_bound=run.error)


METHODS: dict[str, Callable[..., PlanningResult]] = {
    "value-iteration": value_iteration,
    "policy-iteration": policy_iteration,
    "modified-policy-iteration": modified_policy_iteration,
    "q-value-iteration": q_value_iteration,
    "policy-evaluation": policy_evaluation,
}
TAKES_POLICY = {"policy-iteration": "the starting policy", "policy-evaluation": "the policy to evaluate"}


def plan(mdp: FiniteMDP, method: str = "value-iteration", *, policy: np.ndarray | None = None, tolerance: float = 1e-8,
         max_iterations: int | None = None, callback: Callback | None = None) -> PlanningResult:
    """Run a solver from METHODS by name: one entry point for the command line and for scripts."""
    if method not in METHODS:
        raise ConfigError(f"unknown planning method {method!r}; choose one of {', '.join(METHODS)}")
    if not tolerance > 0:
        raise ConfigError(f"tolerance must be positive, got {tolerance}")
    options: dict[str, Any] = {"tolerance": tolerance, "callback": callback}
    if max_iterations is not None:
        options["max_iterations"] = max_iterations
    if method == "policy-evaluation":
        if policy is None:
            raise ConfigError("policy-evaluation needs a policy to evaluate (--policy FILE)")
        return policy_evaluation(mdp, policy, **options)
    if policy is not None:
        if method not in TAKES_POLICY:
            raise ConfigError(f"{method} does not take a policy; only {' and '.join(TAKES_POLICY)} do")
        options["policy"] = policy
    return METHODS[method](mdp, **options)


def _solve(mdp: FiniteMDP, policy: np.ndarray) -> np.ndarray:
    """V_π from (I − γ P_π) V = r_π on the non-terminal states (terminal states are worth 0)."""
    p_pi, r_pi = mdp.policy_model(policy)
    live = np.flatnonzero(~mdp.terminal)
    system = sp.eye_array(len(live), format="csc") - mdp.gamma * sp.csc_array(p_pi[live][:, live])
    V = np.zeros(mdp.n_states)
    if len(live):
        V[live] = np.atleast_1d(spsolve(system, r_pi[live]))
    if not np.isfinite(V).all():
        raise PlanningError(f"{mdp.name}: the policy's Bellman equation has no unique solution")
    return V


@dataclass
class _Run:
    x: np.ndarray  # the last iterate (values, or Q-values)
    k: int  # sweeps
    converged: bool
    error: float | None  # guaranteed max error of x
    d: np.ndarray  # the last sweep's differences on live states


def _iterate(backup: Callable[[np.ndarray], np.ndarray], x: np.ndarray, live: np.ndarray | slice, bounds: _Bounds,
             tolerance: float, max_iterations: int, callback: Callback | None,
             then: Callable[[np.ndarray], np.ndarray] | None = None) -> _Run:
    """x ← backup(x) until the bounds guarantee `tolerance`, then shift x to the bounds' midpoint.
    `then` runs after each sweep that did not stop (modified policy iteration's partial evaluation)."""
    for k in range(1, max_iterations + 1):
        x_next = backup(x)
        d = (x_next[live] - x[live]).ravel()
        stop, shift, error = bounds.check(d, tolerance)
        x = x_next
        _report(callback, k, d)
        if stop:
            x[live] += shift
            return _Run(x, k, True, error, d)
        if then is not None:
            x = then(x)
    return _Run(x, max_iterations, False, None, d)


def _start(mdp: FiniteMDP, max_iterations: int, check_episodes: bool = True) -> tuple[float, np.ndarray | slice, _Bounds]:
    """Clock, index of the non-terminal states (a plain slice when all are: no copies in the hot loop)
    and the contraction bounds of B_*; with γ = 1, first make sure every episode can end."""
    started = time.perf_counter()
    if max_iterations < 1:
        raise ConfigError(f"max_iterations must be at least 1, got {max_iterations}")
    if check_episodes and mdp.gamma == 1:
        proper_policy(mdp)  # raises, naming the states that can never end their episode
    live = np.flatnonzero(~mdp.terminal) if mdp.terminal.any() else slice(None)
    return started, live, _Bounds(mdp.gamma * mdp.continuation()[live])


def _finish(mdp: FiniteMDP, method: str, V: np.ndarray, started: float, *, iterations: int, sweeps: int, converged: bool,
            error_bound: float | None, evaluated: np.ndarray | None = None, keep: np.ndarray | None = None) -> PlanningResult:
    """Q on the returned values, the greedy policy (keeping `keep`'s actions on ties) and ‖B V − V‖∞,
    with B = B_π for an `evaluated` policy and B_* otherwise."""
    q = q_values(mdp, V)
    backed_up = row_max(q) if evaluated is None else (mdp.policy_probabilities(evaluated) * q).sum(axis=1)
    return PlanningResult(
        method=method, values=V, q_values=q, policy=greedy_policy(q, keep), iterations=iterations,
        residual=float(np.abs(backed_up - V).max(initial=0.0)), seconds=time.perf_counter() - started,
        converged=bool(converged), error_bound=error_bound if converged else None, sweeps=sweeps, gamma=mdp.gamma,
    )


def _report(callback: Callback | None, k: int, d: np.ndarray) -> None:
    if callback is not None:
        callback(k, float(np.abs(d).max(initial=0.0)))


def _not_converged(mdp: FiniteMDP, what: str, run: _Run, live: np.ndarray | slice) -> None:
    """With γ = 1, values that still grow mean reward collected forever: say so instead of returning garbage."""
    if run.converged or mdp.gamma < 1:
        return
    states = np.arange(mdp.n_states)[live]
    change = np.abs(run.d).reshape(len(states), -1).max(axis=1)
    worst = states[np.argsort(-change)]
    raise PlanningError(f"{mdp.name}: {what} with gamma=1 did not converge in {run.k} sweeps; values still change by "
                        f"{change.max():.3g} at {_states(mdp, worst)}: a policy can collect reward forever without "
                        "ending the episode; use gamma < 1")

