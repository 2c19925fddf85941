"""The options of a video stylization beyond `StylizeConfig`'s (temporal weight, flow, long-term frames,
passes, later frames' iterations, cuts), their defaults and ranges. Torch-free, for the CLI."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from nst.errors import ConfigError
from nst.runtime.config import Rule, StylizeConfig, check
from nst.video.flow import FlowMethod, FlowSettings

# Later frames start from the previous output warped into them, so they need fewer iterations than the
# first, which starts from noise: this share of --iterations (benchmarks/video.py, README).
LATER_SHARE = 0.3
# The temporal term's weight by loss scale (benchmarks/video.py): the smallest that brought the warp error
# of a pan under half of per-frame stylization's, the style loss within 10 % of it.
TEMPORAL_WEIGHTS: dict[str, float] = {"reference": 50.0, "balanced": 5.0}

RULES: dict[str, Rule] = {
    "temporal_weight": Rule(0, 1e15),
    "later_iterations": Rule(1, 1_000_000),
    "long_term": Rule(1, 1000),
    "passes": Rule(1, 100),
}


@dataclass(frozen=True)
class VideoSettings:
    """How the frames of a shot are tied together (Ruder et al. 2016). None: the measured default."""

    temporal_weight: float | None = None  # None: TEMPORAL_WEIGHTS[loss scale]
    later_iterations: int | None = None  # iterations of every frame after a shot's first; None: LATER_SHARE
    long_term: tuple[int, ...] = (1,)  # earlier frames each frame is held to, by offset (1: the previous)
    passes: int = 1  # Ruder et al.'s multi-pass: passes alternate direction
    flow: FlowMethod = "dis"  # DIS at its medium preset, or Farnebäck
    cuts: bool = True  # a hard cut starts a new shot, from noise

    def __post_init__(self) -> None:
        check(self, RULES)
        if 1 not in self.long_term or len(set(self.long_term)) != len(self.long_term):
            raise ConfigError(
                f"--long-term lists frame offsets once each and includes 1 (the previous frame), got "
                f"{','.join(map(str, self.long_term))}"
            )

    def resolved(self, config: StylizeConfig) -> VideoSettings:
        """These settings with their defaults filled in for `config` (its loss scale and iterations)."""
        if config.loss_scale not in TEMPORAL_WEIGHTS:
            raise ValueError("resolve loss scale auto for the model first (Stylizer.resolve)")
        weight = self.temporal_weight
        later = self.later_iterations
        return dataclasses.replace(
            self,
            temporal_weight=TEMPORAL_WEIGHTS[config.loss_scale] if weight is None else weight,
            later_iterations=max(1, round(LATER_SHARE * config.iterations)) if later is None else later,
            long_term=tuple(sorted(self.long_term)),
        )

    @property
    def flow_settings(self) -> FlowSettings:
        return FlowSettings(method=self.flow)

    def options(self) -> dict[str, Any]:
        """The settings as JSON values (resolve them first: what a frame's manifest line records)."""
        return {field.name: _plain(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def iterations(self, config: StylizeConfig, *, first: bool) -> int:
        """A frame's iterations in one pass: a shot's first frame runs --iterations, the others the
        later frames' share, both spread over the passes."""
        budget = config.iterations if first else (self.later_iterations or config.iterations)
        return max(1, math.ceil(budget / self.passes))

    @property
    def temporal_from(self) -> int:
        """The first pass with the temporal term: Ruder et al.'s multi-pass adds it halfway (pass 8 of
        15); a single pass has it from the start."""
        return self.passes // 2 + 1


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
