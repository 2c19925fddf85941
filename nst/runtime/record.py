"""What a finished stylization carries besides its pixels, for `nst stylize`, every batch worker
and the web app alike: the provenance its PNG records and how it is encoded (`Encoding`), the
final loss that the closing line and the manifest report, and the loss log (CSV, optionally
plotted) written beside the image."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst.errors import ConfigError
from nst.fileio import atomic_path
from nst.runtime.config import BitDepth, StylizeConfig, applied_options
from nst.runtime.images import OutputImage, save_image
from nst.version import nst_version

LOG_SUFFIX = ".losses.csv"
PLOT_SUFFIX = ".losses.png"


def provenance(
    config: StylizeConfig,
    *,
    content: Any,
    styles: Sequence[Any],
    model: Path,
    weights_sha256: str,
    targets: Path | None,
    device: str,
    precision: str,
    source_sha256: str = "",
) -> dict[str, str]:
    """The PNG text chunks: the options that applied (seed included; `config` resolved, so the
    loss scale is the one used, never `auto`), what the image was made from (the model's
    weights file by `source_sha256`), and where: enough to reproduce it."""
    values = applied_options(config)
    values.update(
        content=Path(str(content)).name,
        styles=[Path(str(s)).name for s in styles],
        model=model.name,
        model_weights_sha256=weights_sha256,
        model_source_sha256=source_sha256,
        targets=targets.name if targets else None,
        device=device,
        precision_used=precision,
        nst_version=nst_version(),
    )
    return {"nst:parameters": json.dumps(values, sort_keys=True), "Software": f"nst {nst_version()}"}


@dataclass(frozen=True)
class Encoding:
    """How a run writes its images, final and checkpoints alike: the PNG text (its provenance,
    `Stylizer.provenance`), the bits per channel, and the colour profile (None: sRGB)."""

    text: dict[str, str]
    bit_depth: BitDepth = 8
    profile: bytes | None = None

    def save(self, image: OutputImage, path: Path, *, overwrite: bool) -> None:
        save_image(image, path, overwrite=overwrite, text=self.text, bit_depth=self.bit_depth, profile=self.profile)


def final_loss(rows: Sequence[dict[str, Any]]) -> float | None:
    """The best total of the last stage (what the output image scored), None if not finite."""
    if not rows:
        return None
    stage = rows[-1]["stage"]
    loss = min(r["total"] for r in rows if r["stage"] == stage)
    return loss if math.isfinite(loss) else None


@dataclass(frozen=True)
class LossLog:
    """The losses of every iteration beside an output: `OUT.losses.csv`, and `OUT.losses.png`
    when plotted (matplotlib, the `nst[plot]` extra)."""

    csv: Path | None = None
    plot: Path | None = None

    @classmethod
    def beside(cls, output: Path, *, log: bool, plot: bool) -> LossLog:
        return cls(
            output.with_name(output.stem + LOG_SUFFIX) if log else None,
            output.with_name(output.stem + PLOT_SUFFIX) if plot else None,
        )

    def paths(self) -> list[Path]:
        return [p for p in (self.csv, self.plot) if p is not None]

    def write(self, rows: Sequence[dict[str, Any]], *, overwrite: bool) -> None:
        """The CSV and the plot of the run's history rows (`Step.row()`), each atomically."""
        if self.csv is not None:
            with atomic_path(self.csv, overwrite=overwrite) as tmp, open(tmp, "w") as f:
                f.write("iteration,scale,width,height,elapsed_s,total,content,style,tv\n")
                for r in rows:
                    terms = r["terms"]
                    f.write(
                        f"{r['iteration']},{r['stage']},{r['size'][1]},{r['size'][0]},{r['elapsed']:.4f},"
                        f"{r['total']:.9g},{terms.get('content', 0):.9g},{terms.get('style', 0):.9g},"
                        f"{terms.get('tv', 0):.9g}\n"
                    )
        if self.plot is not None and rows:
            _plot(rows, self.plot, overwrite)


def _plot(rows: Sequence[dict[str, Any]], path: Path, overwrite: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    x = [r["iteration"] for r in rows]
    ax.plot(x, [max(r["total"], 1e-12) for r in rows], label="total")
    for name in rows[-1]["terms"]:
        ax.plot(x, [max(r["terms"].get(name, 0.0), 1e-12) for r in rows], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("weighted loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def require_matplotlib() -> None:
    """A one-line error now, before any work, when --plot cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'nst[plot]' (or pip install matplotlib)") from None
