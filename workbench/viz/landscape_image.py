"""A 2-D landscape's filled contours as a PNG image, for a figure's background.

The toy figure draws its map's contours as a layout image instead of a plotly contour trace: plotly.js recomputes
and redraws a contour trace (marching squares over the grid, for every level) on every redraw of the figure,
which was a third of the cost of each step of the explorer; an image is drawn once. The image shows the same
thing: ``levels`` bands of equal width in L, coloured by the Viridis scale, and a thin darker line where one band
meets the next. PNG encoding uses the standard library (zlib), so nothing is added to the dependencies.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import torch
from plotly.colors import sample_colorscale

from workbench._checks import check_int
from workbench.toy.landscapes import Landscape

LEVELS = 30
_LINE_SHADE = 0.72  # a band edge's colour, relative to its band's


def landscape_png(landscape: Landscape, *, width: int = 480, levels: int = LEVELS) -> bytes:
    """The filled contours of L over ``landscape.bounds`` as PNG bytes, ``width`` pixels wide and as high as the
    bounds' aspect ratio makes it (one pixel = one unit of θ on both axes, as on the map)."""
    width = check_int("width", width, minimum=2)
    levels = check_int("levels", levels, minimum=2)
    (x_low, x_high), (y_low, y_high) = landscape.bounds
    height = max(2, round(width * (y_high - y_low) / (x_high - x_low)))
    # pixel centres; rows from the top (largest y) down, as images are stored
    xs = torch.linspace(x_low, x_high, 2 * width + 1, dtype=torch.float64)[1::2]
    ys = torch.linspace(y_high, y_low, 2 * height + 1, dtype=torch.float64)[1::2]
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    z = landscape.value(grid).reshape(height, width).numpy()
    span = float(z.max() - z.min()) or 1.0
    band = np.minimum(((z - z.min()) / span * levels).astype(int), levels - 1)
    palette = np.array([_rgb(color) for color in sample_colorscale("Viridis", np.linspace(0, 1, levels))])
    pixels = palette[band]
    edge = np.zeros_like(band, dtype=bool)
    edge[:, 1:] |= band[:, 1:] != band[:, :-1]
    edge[1:, :] |= band[1:, :] != band[:-1, :]
    pixels[edge] *= _LINE_SHADE
    return _png(pixels.round().astype(np.uint8))


def landscape_image(landscape: Landscape, *, width: int = 480, levels: int = LEVELS) -> dict:
    """A plotly layout image (for ``layout.images``) of ``landscape_png`` placed on the map's axes over the bounds,
    below the traces."""
    (x_low, x_high), (y_low, y_high) = landscape.bounds
    png = landscape_png(landscape, width=width, levels=levels)
    return {
        "source": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        "xref": "x", "yref": "y", "x": x_low, "y": y_high, "sizex": x_high - x_low, "sizey": y_high - y_low,
        "sizing": "stretch", "layer": "below",
    }  # fmt: skip


def _rgb(color: str) -> tuple[float, float, float]:
    """``"rgb(68, 1, 84)"`` → (68.0, 1.0, 84.0)."""
    red, green, blue = color[color.index("(") + 1 : color.index(")")].split(",")
    return float(red), float(green), float(blue)


def _png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of ``pixels`` ``(height, width, 3)`` uint8."""
    height, width, _ = pixels.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, 3 * width)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
