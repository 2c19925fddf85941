"""nst: neural style transfer (Gatys et al.) with an ONNX VGG extractor and a PyTorch loop.

`nst.stylize(content, styles, config=...)`, the `nst.Stylizer` session, `nst.stylize_batch`
(many images, sweeps, worker processes, Ray), `nst.stylize_video` (clips with temporal
consistency) and the configs load on first use, so that `import nst` stays light.
"""

from __future__ import annotations

_LAZY = {
    "stylize": "nst.runtime.stylize",
    "stylize_batch": "nst.batch",
    "BatchResult": "nst.batch",
    "stylize_video": "nst.video.run",
    "VideoSettings": "nst.video.settings",
    "Stylizer": "nst.runtime.stylize",
    "StylizeInterrupted": "nst.runtime.run",
    "StylizeConfig": "nst.runtime.config",
    "PrecomputeConfig": "nst.runtime.config",
    "Step": "nst.runtime.loop",
    "compute_style_targets": "nst.runtime.grams",
    "load_targets": "nst.runtime.targets",
    "save_targets": "nst.runtime.targets",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nst' has no attribute {name!r}")
