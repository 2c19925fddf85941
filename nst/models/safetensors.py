"""Reader for `.safetensors` files, by hand from the format's specification (an 8-byte header
length, a JSON header, raw little-endian tensors): no dependency, and tensors are decoded only
when asked for, so a file's classifier is never read."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from nst.errors import WeightsError

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}  # BF16: the top half of a float32
_MAX_HEADER = 100 << 20  # the format's own limit on the JSON header


class SafetensorsFile(Mapping[str, np.ndarray]):
    """The float tensors of a `.safetensors` file by name, read on access (memory-mapped)."""

    def __init__(self, path: str | Path):
        self.path = path = Path(path)
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= length <= min(size - 8, _MAX_HEADER):
                raise WeightsError(f"{path} is not a .safetensors file (no valid header length); is it complete?")
            try:
                header = json.loads(f.read(length))
            except (ValueError, UnicodeDecodeError) as exc:
                raise WeightsError(f"{path}: the .safetensors header is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise WeightsError(f"{path}: the .safetensors header is not a JSON object")
        self.data_size = size - 8 - length
        self.offset = 8 + length
        self.entries = {k: v for k, v in header.items() if k != "__metadata__" and self._is_float(k, v)}

    def _is_float(self, name: str, entry: object) -> bool:
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise WeightsError(f"{self.path}: .safetensors entry {name} lacks dtype, shape or data_offsets")
        return entry["dtype"] in _DTYPES

    def __getitem__(self, name: str) -> np.ndarray:
        entry = self.entries[name]
        shape = tuple(int(n) for n in entry["shape"])
        begin, end = (int(n) for n in entry["data_offsets"])
        dtype = np.dtype(_DTYPES[entry["dtype"]])
        if not 0 <= begin <= end <= self.data_size or end - begin != int(np.prod(shape)) * dtype.itemsize:
            raise WeightsError(f"{self.path}: .safetensors entry {name} has data offsets that do not fit its shape")
        raw = (
            np.memmap(self.path, dtype=dtype, mode="r", offset=self.offset + begin, shape=shape)
            if shape and end > begin
            else np.zeros(shape, dtype)
        )
        if entry["dtype"] == "BF16":
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return np.asarray(raw, dtype=np.float32)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def load_safetensors(path: str | Path) -> SafetensorsFile:
    """The float tensors of a `.safetensors` file (decoded lazily, by name)."""
    try:
        return SafetensorsFile(path)
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
