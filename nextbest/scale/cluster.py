"""Joining or starting Ray, and turning its errors back into nextbest's.

    with ray_session("local") as ray:     # a Ray of its own on this machine, stopped at the end
        ...
    with ray_session("auto"):             # the cluster this machine is part of (`ray start`), or ray://host:port

A session started inside another one (a test, a notebook that called `ray.init`) uses that one and leaves it running.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from nextbest.errors import ConfigError, NextbestError

LOCAL = "local"  # `--ray` without an address


def import_ray() -> ModuleType:
    """The `ray` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'nextbest[ray]'") from None
    return ray


@contextmanager
def ray_session(address: str = LOCAL) -> Iterator[ModuleType]:
    """Ray connected to `address` ('local': start one on this machine; 'auto': the running cluster this machine
    belongs to; 'ray://host:port': a remote one) for the block; a Ray this started is shut down at its end."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                 configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise ConfigError(f"--ray {address}: cannot connect to Ray ({str(error).splitlines()[0]}); expected 'auto' for "
                          "the cluster this machine belongs to (`ray start`), ray://host:port, or no address for a local one") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def user_error(error: BaseException) -> NextbestError | None:
    """The NextbestError a Ray task raised, if `error` (as Ray wraps it, perhaps several times) is one."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        cause = getattr(error, "cause", None)  # RayTaskError keeps the task's own exception here
        if isinstance(cause, NextbestError):
            return cause
        if isinstance(error, NextbestError) and type(error).__module__.startswith("nextbest"):
            return error
        error = cause if isinstance(cause, BaseException) else error.__cause__
    return None


@contextmanager
def user_errors() -> Iterator[None]:
    """Re-raise a NextbestError that a Ray task raised as itself (one red line), not as Ray's wrapper."""
    try:
        yield
    except Exception as error:  # Ray's wrapper of a task's SchemaError is also a SchemaError, with a traceback as its text
        found = user_error(error)
        if found is None or found is error:
            raise
        raise type(found)(str(found).splitlines()[0]) from None  # without what Ray appended (attempts, advice)
