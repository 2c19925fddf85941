"""What an output image records about how it was made (its PNG text chunks): enough to
reproduce it. Written by `nst stylize` and by every worker of a batch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nst.runtime.config import StylizeConfig, applied_options
from nst.version import nst_version


def provenance(config: StylizeConfig, *, content: Any, styles: Sequence[Any], model: Path, weights_sha256: str,
               targets: Path | None, device: str, precision: str, source_sha256: str = "") -> dict[str, str]:  # fmt: skip
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
