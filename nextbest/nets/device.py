"""Where tensors live: CUDA when present, else the CPU (always supported)."""

import os

import torch


def default_device() -> torch.device:
    """CUDA if available, unless NEXTBEST_DEVICE says otherwise (e.g. 'cpu')."""
    requested = os.environ.get("NEXTBEST_DEVICE")
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
