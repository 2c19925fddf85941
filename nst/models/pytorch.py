"""Reader for PyTorch `.pth` state dicts, through `torch.load(weights_only=True)`: plain tensors
only, so a file holding pickled code is refused and its code never runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nst.errors import WeightsError

_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def load_pth(path: str | Path) -> dict[str, np.ndarray]:
    """The float tensors of a `.pth` state dict (or of its `state_dict` entry), as numpy arrays."""
    import pickle

    import torch

    path = Path(path)
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        match = _GLOBAL.search(str(exc))
        what = f"it calls {match.group(1)}" if match else "objects other than tensors"
        raise WeightsError(
            f"{path} holds pickled code ({what}), which nst never runs; save the weights as a plain state dict "
            "(torch.save(model.state_dict(), ...)) or as .safetensors, from a Python you trust"
        ) from None
    except Exception as exc:  # zip, legacy-pickle and storage errors of every kind
        raise WeightsError(
            f"cannot read {path} as a PyTorch file ({type(exc).__name__}: {exc}); is it complete?"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]  # a training checkpoint
    if not isinstance(data, dict):
        raise WeightsError(f"{path} holds a {type(data).__name__}, not a state dict of named tensors")
    return {
        str(key): value.detach().to(torch.float32).numpy()
        for key, value in data.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point()
    }
