"""Simulators fitted on data: the Bayesian channel response model (response.py, model.py, fit.py,
checks.py) and reward models for pretraining."""
