"""The Stylizer session's set-up cost: a second content image with the same style, against the
first image's set-up (iterations excluded).

    python benchmarks/session.py [--size 512] [--repeat 3]

In one process (imports done first, so neither side pays for them): `Stylizer(model)` loads
the mirror, then `stylize()` of content A plans the run (content pass, one onnxruntime style
pass) and the clock stops at its first iteration's callback; then content B with the same
style, timed the same way. The set-up is the time to the first iteration minus that
iteration's own time (measured as the gap to the second iteration). Medians of --repeat fresh
sessions. Target (issue 10): the second image's set-up <= 10 % of the first's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CONTENT, STYLE, machine, median, model_path

SECOND = CONTENT.parent / "chelsea.jpg"


def setup_seconds(session, content, config) -> float:
    """Seconds from the call to the first iteration's start (two iterations run; the first's
    own time, taken as the gap to the second, is subtracted)."""
    marks: list[float] = []
    start = time.perf_counter()
    session.stylize(content, styles=[STYLE], config=config, callback=lambda step: marks.append(time.perf_counter()))
    return (marks[0] - start) - (marks[1] - marks[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    import torch  # noqa: F401  (imported before the clock: both sides exclude it)

    from nst.runtime.config import StylizeConfig
    from nst.runtime.stylize import Stylizer

    model = model_path()
    config = StylizeConfig(size=args.size, iterations=2, seed=0, precision=args.precision)
    rows = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        session = Stylizer(model, config=config)
        load = time.perf_counter() - start
        first = setup_seconds(session, CONTENT, config)
        second = setup_seconds(session, SECOND, config)
        rows.append((load, first, second))
    load, first, second = (median([r[i] for r in rows]) for i in range(3))
    print(f"# {machine()}; {args.size} px; median of {args.repeat} fresh sessions")
    print("| figure | seconds |")
    print("|---|---|")
    print(f"| loading the model (Stylizer()) | {load:.3f} |")
    print(f"| first image's set-up (plan: content pass, style pass) | {first:.3f} |")
    print(f"| first image's set-up with the model load | {load + first:.3f} |")
    print(f"| second image's set-up (same style: Grams from the cache) | {second:.3f} |")
    print(f"\nsecond / first (model load included): {second / (load + first):.1%}; without it: {second / first:.1%}")


if __name__ == "__main__":
    main()
