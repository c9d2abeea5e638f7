"""Gymnasium spaces as plain dicts, so that a checkpoint holding one loads weights-only.

    space_to_dict(Box(0, 1, (3,)))  →  {"type": "Box", "low": array, "high": array, "dtype": "float32"}
    space_from_dict(that)           →  Box(0.0, 1.0, (3,), float32)

Box, Discrete, MultiDiscrete, MultiBinary, Dict and Tuple; arrays stay numpy (the checkpoint layer
stores them as tensors). A space's random state is not kept: it is not part of what was learned.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


def space_to_dict(space: spaces.Space) -> dict[str, Any]:
    """A plain-dict form of `space` (numbers, strings, numpy arrays, nested dicts and lists)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "low": np.asarray(space.low), "high": np.asarray(space.high), "dtype": np.dtype(space.dtype).str}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec), "start": np.asarray(space.start),
                "dtype": np.dtype(space.dtype).str}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": [[key, space_to_dict(sub)] for key, sub in space.spaces.items()]}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_dict(sub) for sub in space.spaces]}
    raise TypeError(f"cannot store a {type(space).__name__} space; supported: Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple")


def space_from_dict(data: dict[str, Any]) -> spaces.Space:
    """The space `space_to_dict` described."""
    kind = data["type"]
    if kind == "Box":
        return spaces.Box(low=data["low"], high=data["high"], dtype=np.dtype(data["dtype"]))
    if kind == "Discrete":
        return spaces.Discrete(data["n"], start=data["start"])
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(data["nvec"], dtype=np.dtype(data["dtype"]), start=data["start"])
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return spaces.Dict({key: space_from_dict(sub) for key, sub in data["spaces"]})
    if kind == "Tuple":
        return spaces.Tuple([space_from_dict(sub) for sub in data["spaces"]])
    raise ValueError(f"unknown space type {kind!r}")
