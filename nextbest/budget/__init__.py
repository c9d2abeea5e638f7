"""Budget allocation across marketing channels.

    history.py      the channel history: validation and (days, channels) arrays
    synthesize.py   synthetic histories from a known response model, with the truth
    experiment.py   the experiment directory: fit, save, open (refusing failed diagnostics)
    optimize.py     feasible allocations (bounds) and the optimizer on the posterior-mean response
    allocate.py     the recommendation and the baselines, with expected clicks and intervals
    train.py        the PPO allocator trained in nextbest/BudgetAllocation-v0
    plots.py        figures; report.py writes them all

The response model itself is in nextbest.simulators (response.py, model.py, fit.py, checks.py).
"""
