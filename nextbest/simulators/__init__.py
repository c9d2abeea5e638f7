"""Simulators fitted on data: the Bayesian channel response model (response.py, model.py, fit.py,
checks.py), what it decides (optimize.py: feasible allocations and the one-day optimizer), synthetic
channel histories drawn from a known response (synthesize.py), and reward models for pretraining."""
