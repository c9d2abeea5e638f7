"""nextbest on Ray: the same commands, with `--ray`, when one machine is not enough.

    scoring.py   batch scoring of a Parquet file or folder with Ray Data (`nextbest predict --ray`)
    seeds.py     many seeds of a simulation at once (`nextbest simulate --seeds 0-9 --ray`)
    tune.py      sweeps over agents and their settings with Ray Tune and ASHA (`nextbest tune --ray`)
    serve.py     the decision service on Ray Serve (`nextbest serve --ray --replicas N`)
    cluster.py   joining or starting a Ray cluster; Ray's errors back into nextbest's

Ray is imported inside these functions only, so that nothing without `--ray` imports it (the `ray` extra:
`pip install nextbest[ray]`). A path given to a job (contexts, output, experiment directory) is read or
written by Ray's workers, on whichever node they run: on a cluster it must be on storage every node sees.
"""
