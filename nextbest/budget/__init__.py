"""Budget allocation across marketing channels.

    experiment.py   the experiment directory: fit, save, open (refusing failed diagnostics), its environment
    allocate.py     the recommendation and the baselines, with expected clicks and intervals
    train.py        the PPO allocator trained in nextbest/BudgetAllocation-v0
    plots.py        figures; report.py writes them all

What this builds on sits lower: the channel history (reading, validating) in nextbest.data.channels;
the response model, the optimizer (Bounds, allocate_shares, optimize) and synthetic histories in
nextbest.simulators; the environment in nextbest.envs.budget.
"""
