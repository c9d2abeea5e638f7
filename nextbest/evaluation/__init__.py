"""Evaluation: target-action scoring, off-policy estimators, regret."""
