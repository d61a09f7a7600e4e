"""What every task's command line shares: devices and durations."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when there is a GPU, else the CPU; a named device must exist."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: no CUDA device is available here")
    return device


def parse_duration(text: str | float | int) -> float:
    """``"75s"``, ``"10m"``, ``"2h"`` or plain seconds -> seconds (a ValueError names bad text)."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        units = {"s": 1, "m": 60, "h": 3600}
        value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
        try:
            seconds = float(value) * units[unit]
        except ValueError:
            raise ValueError(f"expected a duration like 75s, 10m or 2h, got {text!r}") from None
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds
