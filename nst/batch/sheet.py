"""A batch's contact sheet: one row per content image, one column per parameter set, each
column's values printed under it (like a strip from style emphasis to content emphasis)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst.batch.jobs import format_value

if TYPE_CHECKING:
    from PIL.Image import Image

MARGIN = 8
LINE = 16  # px per line of label text
BACKGROUND = (255, 255, 255)
MISSING = (200, 200, 200)
MIN_CELL = 48  # room for 'failed'


@dataclass(frozen=True)
class Layout:
    """Where everything goes: cells of `cell` x `cell` px, row labels on the left, column
    labels under the grid."""

    rows: int
    columns: int
    cell: int
    label_width: int  # the row labels' column
    label_lines: int  # lines under each column

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the sheet."""
        width = self.label_width + self.columns * (self.cell + MARGIN) + MARGIN
        height = MARGIN + self.rows * (self.cell + MARGIN) + self.label_lines * LINE + MARGIN
        return width, height

    def cell_box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of a cell."""
        left = self.label_width + MARGIN + column * (self.cell + MARGIN)
        top = MARGIN + row * (self.cell + MARGIN)
        return left, top, left + self.cell, top + self.cell


def column_label(parameters: dict[str, Any], style: str) -> list[str]:
    """The lines under a column: its swept values (`style-weight=500`), else the style."""
    if not parameters:
        return [style]
    return [f"{name.replace('_', '-')}={format_value(value)}" for name, value in parameters.items()]


def contact_sheet(results: Sequence[Any], *, style: str, cell: int = 192) -> Image:
    """The sheet of a batch's results (BatchResults): each output read from its file and
    fitted into a square cell of at most `cell` px; a failed output is a grey cell marked
    'failed'. `style` labels the one column of a batch without a sweep."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    font = _font()
    images = {(r.row, r.column): _open(r.output) if r.status != "failed" else None for r in results}
    # Cells as large as the largest output, up to `cell`: small outputs are not blown up.
    cell = min(cell, max((max(img.size) for img in images.values() if img is not None), default=cell))
    cell = max(cell, MIN_CELL)
    rows = {r.row: r.content.stem for r in results}
    columns = {r.column: column_label(r.parameters, style) for r in results}
    measure = ImageDraw.Draw(PILImage.new("RGB", (1, 1)))
    widest = max((measure.textlength(name, font=font) for name in rows.values()), default=0)
    layout = Layout(
        max(rows) + 1,
        max(columns) + 1,
        cell,
        int(min(widest, 2 * cell)) + MARGIN,
        max(len(lines) for lines in columns.values()),
    )
    sheet = PILImage.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for (row, column), image in images.items():
        left, top, right, bottom = layout.cell_box(row, column)
        if image is None:
            draw.rectangle((left, top, right - 1, bottom - 1), fill=MISSING)
            draw.text((left + 4, top + 4), "failed", fill=(0, 0, 0), font=font)
            continue
        image.thumbnail((cell, cell), PILImage.Resampling.LANCZOS)
        sheet.paste(image, (left + (cell - image.width) // 2, top + (cell - image.height) // 2))
    for row, name in rows.items():
        _, top, _, bottom = layout.cell_box(row, 0)
        text = _fit(draw, name, layout.label_width - MARGIN, font)
        _, height = _extent(draw, text, font)
        draw.text((MARGIN, (top + bottom - height) // 2), text, fill=(0, 0, 0), font=font)
    for column, lines in columns.items():
        left, _, right, bottom = layout.cell_box(layout.rows - 1, column)
        for i, line in enumerate(lines):
            text = _fit(draw, line, cell, font)
            width, _ = _extent(draw, text, font)
            draw.text(((left + right - width) // 2, bottom + MARGIN // 2 + i * LINE), text, fill=(0, 0, 0), font=font)
    return sheet


def _open(path: Path) -> Image | None:
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError):
        return None


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)
    except (TypeError, OSError):  # Pillow < 10.1, or without FreeType: the bitmap font
        return ImageFont.load_default()


def _extent(draw: Any, text: str, font: Any) -> tuple[int, int]:
    left, _, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(right - left), int(bottom)


def _fit(draw: Any, text: str, width: int, font: Any) -> str:
    """`text`, shortened with an ellipsis to fit `width` px."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
