"""`--loss-scale auto`: the reference scale for the weights it was tuned on, balanced for all others.

anishathalye/neural-style's weights (content 5, style 500, TV 100) were tuned on MatConvNet's
VGG-19; with any other weights they wash the content out or drown it in style, while the
balanced scale keeps its balance (benchmarks/README.md, "Loss scale on trained weights"). An
extractor says which file it came from (`nst.source_sha256`), so `auto` resolves to `reference`
when that file is one of the registry's MatConvNet VGG-19 files and to `balanced` otherwise.
"""

from __future__ import annotations

from nst.contract import ModelInfo
from nst.models import registry
from nst.models.cache import known_sha256, weights_dir
from nst.runtime.config import StylizeConfig

# The registry's files that the reference's weights were tuned on (MatConvNet's VGG-19, both versions).
REFERENCE_WEIGHTS = ("vgg19", "vgg19-2015")


def reference_sources() -> dict[str, str]:
    """SHA-256 -> registry name of the files `reference` is meant for: the SHA-256 the registry
    publishes, else the one this cache recorded when it verified its download (or a copy placed
    in the cache) against the registry's checksum."""
    known: dict[str, str] = {}
    for name in REFERENCE_WEIGHTS:
        entry = registry.WEIGHTS.get(name)
        if entry is None:
            continue
        if entry.sha256:
            known[entry.sha256.lower()] = name
        verified = _verified_sha256(entry.cache_name)
        if verified:
            known[verified] = name
    return known


def _verified_sha256(cache_name: str) -> str | None:
    """The recorded SHA-256 of the registry file in the cache, if there is one (never hashes)."""
    try:
        return known_sha256(weights_dir() / cache_name)
    except OSError:  # an unusable cache folder: nothing was verified there
        return None


def resolve_loss_scale(config: StylizeConfig, info: ModelInfo) -> StylizeConfig:
    """`config` with `auto` replaced by the scale for the model's weights (explicit scales stay)."""
    if config.loss_scale != "auto":
        return config
    reference = info.source_sha256.lower() in reference_sources()
    return config.replace(loss_scale="reference" if reference else "balanced")


def describe_loss_scale(config: StylizeConfig, info: ModelInfo, *, requested: str) -> str:
    """One line for the start of a run: the scale, its weights, and why (the model's weights).
    `config` is resolved; `requested` is the scale that was asked for (auto, reference, balanced)."""
    resolved = config.resolved()
    name = reference_sources().get(info.source_sha256.lower())
    source = name if name else f"{info.architecture} weights {info.source_sha256[:12] or '(source unknown)'}"
    why = ""
    if requested == "auto":
        why = " (auto: the weights it was tuned on)" if name else " (auto: not a registry MatConvNet VGG-19)"
    return (
        f"loss scale {config.loss_scale}{why}: content {resolved.content_weight:g}, style {resolved.style_weight:g}, "
        f"TV {resolved.tv_weight:g}; model {info.path.name} from {source}"
    )
