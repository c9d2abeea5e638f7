"""Evaluation: how good is a policy, and how sure are we?

    estimators.py     off-policy estimators with one signature (dm, ips, snips, dr, switch-dr, dr-os)
    (reward models q̂(x, a) for dm and the DR family, cross-fitted over K folds, are shared with
    pretraining: nextbest.simulators.reward_models)
    logs.py           reading logs and per-action columns (probability_<action>, expected_reward_<action>)
    ope.py            every estimator on a log, against a target table or a nextbest agent
    target.py         `nextbest evaluate`: target actions, expected reward and regret from an oracle
    history.py        an experiment batch by batch from its experience store; regret in simulation
    simulation.py     simulation.json, the scored batches of `nextbest simulate --experiment-dir`
    report.py         `nextbest report`: HTML or Markdown with figures from nextbest.evaluation.plots
"""
