"""Builds the own-digits check set: about 200 photo- and scan-like digit images with labels.

There is no camera, pen or scanner on the machines this project is built on, so the images
are simulated, deterministically (same seed, same files), in five kinds of 40 each:

- pen: hand-authored pen-stroke paths (several writing styles per digit) with jitter, slant,
  pressure and ink colour, on plain, lined or squared paper, "scanned" or "photographed";
- printed: digits in the fonts matplotlib ships (DejaVu, Computer Modern, STIX), printed on
  paper and photographed;
- photo: real handwriting, MNIST *test* images upscaled to smooth pen strokes, inverted to
  dark ink, on paper, off-centre, rotated, in perspective, unevenly lit, blurred, noisy,
  JPEG-compressed, some stored sideways with an EXIF orientation tag;
- inverse: light chalk or print on a dark board, in any of the styles above;
- offcentre: small digits far from the centre of a large page.

Run (MNIST's folder in $MNISTLAB_DATA):
    python benchmarks/own_digits/make_check_set.py
writes benchmarks/own_digits/images/, labels.csv and contact_sheet.png. See README.md.
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20240611  # the whole set follows from it
PER_KIND = 40  # images per kind, 4 of each digit
KINDS = ("pen", "printed", "photo", "inverse", "offcentre")
SUPERSAMPLE = 3  # strokes are drawn this many times larger, then reduced (anti-aliasing)

# Pen-stroke paths of each digit, in a box 0.6 wide and 1 tall (x right, y down). A style is a
# list of strokes; a stroke passes through its points along a Catmull-Rom spline; a repeated
# point is a sharp corner.
# fmt: off
STYLES = {
    0: {
        "oval": [[(0.34, 0.0), (0.12, 0.12), (0.02, 0.45), (0.1, 0.85), (0.3, 1.0), (0.5, 0.88),
                  (0.6, 0.5), (0.52, 0.12), (0.34, 0.0), (0.22, 0.06)]],
        "round open": [[(0.45, 0.08), (0.28, 0.0), (0.08, 0.2), (0.02, 0.55), (0.15, 0.92),
                        (0.35, 1.0), (0.55, 0.8), (0.58, 0.4), (0.48, 0.12)]],
        "narrow slanted": [[(0.4, 0.02), (0.22, 0.1), (0.1, 0.5), (0.15, 0.9), (0.3, 0.99),
                            (0.45, 0.85), (0.52, 0.45), (0.48, 0.08), (0.38, 0.0)]],
    },
    1: {
        "stick": [[(0.33, 0.0), (0.31, 0.5), (0.28, 1.0)]],
        "flag": [[(0.1, 0.25), (0.34, 0.0), (0.34, 0.0), (0.31, 1.0)]],
        "flag and base": [[(0.12, 0.22), (0.34, 0.0), (0.34, 0.0), (0.32, 1.0)], [(0.1, 1.0),
                           (0.55, 0.99)]],
    },
    2: {
        "classic": [[(0.04, 0.22), (0.2, 0.03), (0.42, 0.02), (0.56, 0.18), (0.5, 0.42),
                     (0.3, 0.68), (0.03, 0.98), (0.03, 0.98), (0.32, 0.96), (0.6, 0.98)]],
        "curl": [[(0.05, 0.2), (0.22, 0.02), (0.45, 0.03), (0.55, 0.22), (0.45, 0.48), (0.2, 0.78),
                  (0.1, 0.93), (0.2, 0.99), (0.28, 0.9), (0.16, 0.86), (0.08, 0.96), (0.35, 1.0),
                  (0.6, 0.96)]],
        "z-like": [[(0.02, 0.1), (0.25, 0.0), (0.5, 0.05), (0.52, 0.25), (0.05, 0.98),
                    (0.05, 0.98), (0.6, 0.97)]],
    },
    3: {
        "round": [[(0.05, 0.12), (0.25, 0.0), (0.48, 0.05), (0.52, 0.24), (0.22, 0.46),
                   (0.22, 0.46), (0.52, 0.6), (0.56, 0.82), (0.36, 1.0), (0.12, 0.97),
                   (0.0, 0.85)]],
        "flat top": [[(0.04, 0.01), (0.56, 0.0), (0.56, 0.0), (0.24, 0.38), (0.24, 0.38),
                      (0.5, 0.5), (0.58, 0.76), (0.4, 0.98), (0.14, 0.98), (0.0, 0.84)]],
        "loose": [[(0.08, 0.18), (0.3, 0.02), (0.5, 0.1), (0.45, 0.35), (0.28, 0.48), (0.5, 0.62),
                   (0.52, 0.86), (0.3, 1.0), (0.05, 0.9)]],
    },
    4: {
        "open": [[(0.36, 0.0), (0.04, 0.64), (0.04, 0.64), (0.6, 0.63)], [(0.46, 0.3),
                  (0.45, 1.0)]],
        "closed": [[(0.46, 1.0), (0.47, 0.0), (0.47, 0.0), (0.02, 0.64), (0.02, 0.64),
                    (0.6, 0.63)]],
        "parallel": [[(0.08, 0.0), (0.05, 0.55), (0.05, 0.55), (0.58, 0.54)], [(0.46, 0.0),
                      (0.47, 1.0)]],
    },
    5: {
        "two strokes": [[(0.13, 0.02), (0.09, 0.42), (0.09, 0.42), (0.3, 0.36), (0.52, 0.5),
                         (0.56, 0.75), (0.4, 0.97), (0.15, 0.98), (0.02, 0.87)], [(0.13, 0.02),
                         (0.56, 0.0)]],
        "one stroke": [[(0.56, 0.0), (0.14, 0.02), (0.14, 0.02), (0.09, 0.44), (0.09, 0.44),
                        (0.35, 0.37), (0.55, 0.55), (0.52, 0.85), (0.3, 1.0), (0.02, 0.9)]],
        "round belly": [[(0.12, 0.0), (0.08, 0.4), (0.08, 0.4), (0.4, 0.42), (0.58, 0.68),
                         (0.45, 0.95), (0.2, 0.98), (0.04, 0.85)], [(0.12, 0.0), (0.5, 0.03)]],
    },
    6: {
        "classic": [[(0.5, 0.02), (0.25, 0.15), (0.08, 0.45), (0.05, 0.75), (0.2, 0.98),
                     (0.42, 0.97), (0.55, 0.78), (0.45, 0.58), (0.25, 0.55), (0.08, 0.7)]],
        "straight": [[(0.46, 0.0), (0.13, 0.55), (0.1, 0.8), (0.25, 0.98), (0.48, 0.92),
                      (0.52, 0.72), (0.35, 0.58), (0.12, 0.68)]],
        "small loop": [[(0.55, 0.05), (0.3, 0.12), (0.12, 0.4), (0.06, 0.72), (0.18, 0.95),
                        (0.38, 0.98), (0.48, 0.82), (0.38, 0.68), (0.18, 0.72)]],
    },
    7: {
        "plain": [[(0.02, 0.05), (0.58, 0.02), (0.58, 0.02), (0.36, 0.5), (0.24, 1.0)]],
        "bar": [[(0.02, 0.05), (0.58, 0.02), (0.58, 0.02), (0.38, 0.5), (0.26, 1.0)],
                 [(0.16, 0.52), (0.55, 0.5)]],
        "serif": [[(0.02, 0.18), (0.04, 0.03), (0.04, 0.03), (0.58, 0.02), (0.58, 0.02),
                   (0.34, 0.55), (0.28, 1.0)]],
    },
    8: {
        "one stroke": [[(0.5, 0.12), (0.3, 0.0), (0.1, 0.1), (0.12, 0.3), (0.3, 0.47),
                        (0.52, 0.65), (0.5, 0.92), (0.3, 1.0), (0.08, 0.9), (0.08, 0.68),
                        (0.3, 0.48), (0.46, 0.32), (0.48, 0.12), (0.42, 0.05)]],
        "two loops": "two loops",  # drawn by _two_loops
        "snowman": [[(0.3, 0.45), (0.1, 0.3), (0.14, 0.06), (0.32, 0.0), (0.48, 0.1), (0.46, 0.32),
                     (0.3, 0.45), (0.06, 0.62), (0.08, 0.92), (0.3, 1.0), (0.54, 0.9),
                     (0.55, 0.62), (0.3, 0.45)]],
    },
    9: {
        "straight": [[(0.52, 0.2), (0.35, 0.02), (0.12, 0.08), (0.08, 0.3), (0.28, 0.45),
                      (0.5, 0.32), (0.54, 0.05), (0.54, 0.05), (0.52, 0.5), (0.48, 1.0)]],
        "curved": [[(0.52, 0.2), (0.35, 0.02), (0.12, 0.08), (0.08, 0.3), (0.28, 0.45),
                    (0.5, 0.32), (0.55, 0.05), (0.55, 0.05), (0.52, 0.6), (0.38, 0.95),
                    (0.15, 0.97)]],
        "round": [[(0.55, 0.25), (0.45, 0.04), (0.2, 0.02), (0.05, 0.22), (0.15, 0.42),
                   (0.4, 0.42), (0.55, 0.25), (0.55, 0.25), (0.56, 0.6), (0.5, 1.0)]],
    },
}
# fmt: on

INKS = {  # name -> (RGB, opacity, how often it is chosen)
    "black ink": ((30, 30, 40), 0.9, 3),
    "blue ink": ((25, 45, 150), 0.9, 3),
    "black marker": ((12, 12, 12), 1.0, 2),
    "pencil": ((85, 85, 90), 0.6, 2),
    "red ink": ((170, 30, 35), 0.9, 1),
}
CHALK = ((235, 235, 225), 0.85)
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif-Italic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "STIXGeneral.ttf",
)


# ---------------------------------------------------------------- ink masks (alpha, 0..1)


def _spline(points: list[tuple[float, float]], steps: int = 12) -> np.ndarray:
    """(n, 2) points along a Catmull-Rom spline through points."""
    p = np.asarray(points, float)
    p = np.vstack([p[0], p, p[-1]])
    out = [p[1]]
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        for t in np.linspace(0, 1, steps + 1)[1:]:
            out.append(
                0.5
                * (
                    (2 * p1)
                    + (-p0 + p2) * t
                    + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                    + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
                )
            )
    return np.asarray(out)


def _two_loops() -> list[list[tuple[float, float]]]:
    angles = np.linspace(0, 2 * np.pi, 13)
    top = [(0.3 + 0.19 * np.sin(a), 0.24 - 0.23 * np.cos(a)) for a in angles]
    bottom = [(0.3 - 0.25 * np.sin(a), 0.73 - 0.27 * np.cos(a)) for a in angles]
    return [top, bottom]


def pen_mask(rng, digit: int, height: int, width_frac: float, style: str | None = None):
    """A pen-written digit: (alpha (h, w) float32, style name). height in pixels."""
    style = style or rng.choice(sorted(STYLES[digit]))
    strokes = STYLES[digit][style]
    strokes = _two_loops() if strokes == "two loops" else strokes
    jitter = rng.uniform(0.012, 0.03)
    slant = rng.uniform(-0.28, 0.12)  # x shift per unit of height (right-leaning is negative y)
    angle = np.radians(rng.uniform(-7, 7))
    squash = rng.uniform(0.8, 1.2)  # width / height beyond the style's own
    s = SUPERSAMPLE
    pen = max(1.0, width_frac * height) * s  # pen diameter, supersampled pixels
    curves = []
    for stroke in strokes:
        points = np.asarray(stroke, float) + rng.normal(0, jitter, (len(stroke), 2))
        curve = _spline(points)
        x, y = (curve[:, 0] - 0.3) * squash, curve[:, 1] - 0.5
        x = x + slant * (0.5 - curve[:, 1])
        curves.append(
            np.stack(
                [x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle)],
                axis=1,
            )
        )
    allpts = np.vstack(curves)
    low, high = allpts.min(0), allpts.max(0)
    scale = (height * s - pen) / (high[1] - low[1])
    size = ((high - low) * scale + pen * 1.5).astype(int) + 1
    image = Image.new("L", tuple(size), 0)
    draw = ImageDraw.Draw(image)
    for curve in curves:
        xy = (curve - low) * scale + pen * 0.75
        pressure = 1 + 0.25 * np.sin(np.linspace(0, rng.uniform(2, 6), len(xy)) + rng.uniform(0, 6))
        for (x0, y0), (x1, y1), w in zip(xy[:-1], xy[1:], pressure[1:], strict=True):
            r = pen * w / 2
            draw.line([(x0, y0), (x1, y1)], fill=255, width=max(1, int(round(2 * r))))
            draw.ellipse([x1 - r, y1 - r, x1 + r, y1 + r], fill=255)
        r = pen * pressure[0] / 2
        draw.ellipse([xy[0, 0] - r, xy[0, 1] - r, xy[0, 0] + r, xy[0, 1] + r], fill=255)
    small = image.resize((max(1, size[0] // s), max(1, size[1] // s)), Image.Resampling.BOX)
    return np.asarray(small, np.float32) / 255, str(style)


def font_mask(rng, digit: int, height: int):
    """A printed digit: (alpha (h, w) float32, font file name)."""
    import matplotlib

    font_name = FONTS[rng.integers(len(FONTS))]
    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", font_name)
    font = ImageFont.truetype(path, size=int(height * 1.4) * SUPERSAMPLE)
    image = Image.new("L", (font.size * 2, font.size * 2), 0)
    ImageDraw.Draw(image).text((font.size // 3, font.size // 3), str(digit), fill=255, font=font)
    image = image.crop(image.getbbox())
    width = max(1, round(image.width * height / image.height))
    return np.asarray(
        image.resize((width, height), Image.Resampling.BOX), np.float32
    ) / 255, font_name


def mnist_mask(image28: np.ndarray, height: int):
    """An MNIST digit as smooth pen ink: (alpha (h, w) float32) for a digit height pixels tall."""
    rows = np.nonzero(image28.max(axis=1))[0]
    cols = np.nonzero(image28.max(axis=0))[0]
    crop = image28[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = height / crop.shape[0]
    size = (max(1, round(crop.shape[1] * scale)), height)
    big = Image.fromarray(np.pad(crop, 2)).resize(
        (size[0] + round(4 * scale), size[1] + round(4 * scale)), Image.Resampling.BICUBIC
    )
    big = big.filter(ImageFilter.GaussianBlur(scale * 0.35))
    values = np.asarray(big, np.float32) / 255
    return np.clip((values - 0.3) / 0.3, 0, 1)  # a soft threshold: crisp, pen-like edges


# ---------------------------------------------------------------- paper, board and camera


def _smooth_noise(rng, shape, cells: int) -> np.ndarray:
    """Low-frequency noise in about -1..1 over shape (h, w)."""
    grid = rng.normal(0, 1, (cells, cells)).astype(np.float32)
    image = Image.fromarray(grid, "F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(image) / 1.5


def paper(rng, shape, ruling: str = "plain", dark: bool = False) -> np.ndarray:
    """(h, w, 3) float32 reflectance 0..1 of paper (or a dark board), with texture and ruling."""
    if dark:
        base = np.array([rng.uniform(0.12, 0.2), rng.uniform(0.18, 0.28), rng.uniform(0.15, 0.22)])
        if rng.random() < 0.4:  # a black board rather than a green one
            base = np.full(3, rng.uniform(0.1, 0.16))
        texture = 0.04 * _smooth_noise(rng, shape, 6) + 0.015 * _smooth_noise(rng, shape, 40)
    else:
        white = rng.uniform(0.86, 0.97)
        base = white * np.array([1, rng.uniform(0.97, 1), rng.uniform(0.88, 0.99)])  # to cream
        texture = 0.012 * _smooth_noise(rng, shape, 8) + 0.01 * _smooth_noise(rng, shape, 60)
    sheet = base[None, None, :] * (1 + texture[:, :, None])
    if ruling != "plain":
        step = int(min(shape) * rng.uniform(0.06, 0.1))
        offset = rng.integers(step)
        colour = np.array([0.55, 0.7, 0.9]) if ruling == "lined" else np.array([0.65, 0.7, 0.75])
        strength = rng.uniform(0.25, 0.45)
        lines = np.zeros(shape, np.uint8)
        lines[offset::step, :] = 255
        if ruling == "squared":
            lines[:, offset::step] = 255
        lines = np.asarray(Image.fromarray(lines).filter(ImageFilter.GaussianBlur(0.6)), np.float32)
        lines = np.clip(lines / 255 * 1.6, 0, 1)[:, :, None] * strength
        sheet = sheet * (1 - lines) + sheet * colour[None, None, :] * lines
    return sheet.astype(np.float32)


def put_ink(sheet, alpha, colour, opacity, top: int, left: int, rng, grain: float = 0.0):
    """Lays ink (alpha (h, w)) of colour on the sheet at (top, left), in place."""
    h, w = alpha.shape
    h, w = min(h, sheet.shape[0] - top), min(w, sheet.shape[1] - left)
    a = alpha[:h, :w] * opacity
    if grain:  # pencil or chalk: the ink skips the paper's grain
        a = a * np.clip(
            1 - grain * rng.random((h, w)) - grain * _smooth_noise(rng, (h, w), 12), 0, 1
        )
    ink = np.asarray(colour, np.float32) / 255
    region = sheet[top : top + h, left : left + w]
    region[:] = region * (1 - a[:, :, None]) + ink[None, None, :] * a[:, :, None]


def lighting(rng, shape, strength: float) -> np.ndarray:
    """(h, w) float32 illumination 0..1: a gradient, a vignette and a soft shadow."""
    rows, cols = np.indices(shape, dtype=np.float32)
    y, x = rows / shape[0] - 0.5, cols / shape[1] - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 - strength * (0.5 + np.cos(angle) * x + np.sin(angle) * y)
    light -= strength * 0.6 * (x**2 + y**2)
    if rng.random() < 0.4:  # the shadow of a phone or a hand, soft-edged
        edge = rng.uniform(-0.5, 0.5)
        shadow = 1 / (1 + np.exp(-((x if rng.random() < 0.5 else y) - edge) * rng.uniform(8, 20)))
        light *= 1 - strength * 0.5 * shadow
    return np.clip(light, 0.2, 1).astype(np.float32)


def _perspective_coefficients(source, target):
    """PIL PERSPECTIVE coefficients mapping output points (target) to input points (source)."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return np.linalg.solve(np.asarray(rows, float), np.asarray(source, float).ravel())


def camera(rng, sheet, size, light_strength, tilt, blur, noise, scan=False) -> Image.Image:
    """Photographs a sheet (H, W, 3) to an RGB image of size (w, h): view, light, noise, blur.

    A scan also gets a scanner's levels: the paper's own brightness becomes white.
    """
    height, width = sheet.shape[:2]
    image = Image.fromarray(np.clip(sheet * 255, 0, 255).astype(np.uint8))
    out_w, out_h = size
    margin = 0.06  # of the sheet, kept out of view so that the warped corners stay on paper
    corners = np.array(
        [[margin, margin], [1 - margin, margin], [1 - margin, 1 - margin], [margin, 1 - margin]]
    ) * [width, height]
    corners += rng.uniform(-tilt, tilt, corners.shape) * [width, height]
    target = [(0, 0), (out_w, 0), (out_w, out_h), (0, out_h)]
    coefficients = _perspective_coefficients(corners, target)
    image = image.transform(
        (out_w, out_h), Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC
    )
    values = np.asarray(image, np.float32)
    values *= lighting(rng, (out_h, out_w), light_strength)[:, :, None]
    values *= rng.uniform(0.85, 1.05)  # exposure
    values += rng.normal(0, noise, (out_h, out_w, 1))  # sensor noise, then the lens's blur
    image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if scan:
        white = np.percentile(np.asarray(image), 60, axis=(0, 1))  # the paper, per channel
        levels = np.asarray(image, np.float32) * (255 / np.maximum(white * 0.95, 1))
        image = Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8))
    return image


# ---------------------------------------------------------------- the five kinds


class Sheet:
    """A sheet of paper (or a board) a little larger than the camera's view of it."""

    MARGIN = 0.07  # of each side, outside the view (camera() keeps 0.06 out, plus tilt)

    def __init__(self, rng, size, ruling="plain", dark=False):
        self.size = size  # (w, h) of the final image
        self.scale = 1 / (1 - 2 * self.MARGIN)
        self.shape = (round(size[1] * self.scale), round(size[0] * self.scale))
        self.values = paper(rng, self.shape, ruling, dark)

    def place(self, rng, alpha_shape, where: str = "anywhere"):
        """(top, left) in sheet pixels for ink of alpha_shape inside the view."""
        h, w = alpha_shape
        top0, left0 = round(self.shape[0] * self.MARGIN), round(self.shape[1] * self.MARGIN)
        room_y = max(0, self.shape[0] - 2 * top0 - h)
        room_x = max(0, self.shape[1] - 2 * left0 - w)
        if where == "corner":  # far from the centre: in the outer 18% of the room on each axis
            fy = rng.choice([rng.uniform(0, 0.18), rng.uniform(0.82, 1)])
            fx = rng.choice([rng.uniform(0, 0.18), rng.uniform(0.82, 1)])
        else:
            fy, fx = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)
        return top0 + round(fy * room_y), left0 + round(fx * room_x)


def _size(rng, photo: bool, large: bool = False):
    if large:
        choices = [(800, 600), (600, 800), (640, 640)]
    elif photo:
        choices = [(480, 640), (640, 480), (512, 512), (600, 450), (450, 600), (400, 300)]
    else:
        choices = [(400, 520), (520, 400), (360, 360), (300, 400), (240, 240)]
    return choices[rng.integers(len(choices))]


def _ink(rng, chalk: bool):
    """(name, (RGB, opacity)) of a random ink."""
    if chalk:
        return "chalk", CHALK
    names = list(INKS)
    weights = np.array([INKS[name][2] for name in names], float)
    name = names[rng.choice(len(names), p=weights / weights.sum())]
    return name, INKS[name][:2]


def _digit_alpha(rng, style_kind: str, digit: int, height: int, ink_name: str, mnist_image):
    """(alpha, words) for one digit drawn in style_kind: pen, printed or mnist."""
    if style_kind == "pen":
        wide = ink_name in ("black marker", "chalk")
        fraction = rng.uniform(0.08, 0.14) if wide else rng.uniform(0.03, 0.07)
        alpha, style = pen_mask(rng, digit, height, fraction)
        return alpha, f"pen strokes, style '{style}', pen {fraction:.0%} of the digit's height"
    if style_kind == "printed":
        alpha, font = font_mask(rng, digit, height)
        return alpha, f"printed in {font}"
    index, image28 = mnist_image
    return mnist_mask(image28, height), f"derived from MNIST test image #{index}"


def make_image(rng, kind: str, digit: int, mnist_image):
    """One check image: (upright RGB image, description words, is_photo)."""
    style_kind = {"pen": "pen", "printed": "printed", "photo": "mnist"}.get(kind)
    if style_kind is None:
        style_kind = ("pen", "printed", "mnist")[rng.integers(3)]
    dark = kind == "inverse"
    photo = dark or kind == "photo" or rng.random() < 0.65
    ruling = "plain"
    if not dark and style_kind != "printed" and rng.random() < 0.45:
        ruling = ("lined", "squared")[rng.integers(2)]
    size = _size(rng, photo, large=kind == "offcentre")
    sheet = Sheet(rng, size, ruling, dark)
    if style_kind == "printed":
        ink_name, (colour, opacity) = (
            ("print", ((20, 20, 25), 1.0)) if not dark else ("white print", ((240, 240, 240), 1.0))
        )
    else:
        ink_name, (colour, opacity) = _ink(rng, chalk=dark)
    view_height = sheet.shape[0] * (1 - 2 * Sheet.MARGIN)
    fraction = rng.uniform(0.06, 0.14) if kind == "offcentre" else rng.uniform(0.28, 0.75)
    alpha, words = _digit_alpha(
        rng, style_kind, digit, max(12, round(fraction * view_height)), ink_name, mnist_image
    )
    if style_kind == "mnist":
        alpha = np.asarray(
            Image.fromarray(alpha, "F").rotate(
                rng.uniform(-8, 8), Image.Resampling.BICUBIC, expand=True
            )
        )
    top, left = sheet.place(rng, alpha.shape, "corner" if kind == "offcentre" else "anywhere")
    grain = 0.45 if ink_name in ("pencil", "chalk") else 0.0
    put_ink(sheet.values, alpha, colour, opacity, top, left, rng, grain)
    if photo:
        light = rng.uniform(0.15, 0.5)
        blur, noise, tilt = rng.uniform(0.5, 1.6), rng.uniform(2, 6), 0.035
        capture = f"photographed (light falloff {light:.2f}, blur {blur:.1f} px, noise {noise:.1f})"
    else:
        light, blur, noise, tilt = rng.uniform(0.0, 0.04), 0.5, 1.2, 0.006
        capture = "scanned"
    image = camera(rng, sheet.values, size, light, tilt, blur, noise, scan=not photo)
    where = f"{fraction:.0%} of the height" + (", far off-centre" if kind == "offcentre" else "")
    paper_words = "dark board" if dark else f"{ruling} paper"
    description = f"{words}; {ink_name}; {where}; {paper_words}; {capture}"
    return image, description, photo


def save(image: Image.Image, path_stem: str, rng, photo: bool, allow_exif: bool):
    """Writes the image as JPEG (photos; some stored sideways with an EXIF tag) or PNG."""
    if not photo:
        image.convert("L").save(path_stem + ".png", optimize=True)
        return path_stem + ".png", "PNG scan"
    quality = int(rng.integers(50, 86))
    orientation = int(rng.choice([3, 6, 8])) if allow_exif and rng.random() < 0.3 else 1
    stored = {  # the inverse of what exif_transpose does for each tag
        1: image,
        3: image.transpose(Image.Transpose.ROTATE_180),
        6: image.transpose(Image.Transpose.ROTATE_90),
        8: image.transpose(Image.Transpose.ROTATE_270),
    }[orientation]
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    stored.save(path_stem + ".jpg", quality=quality, exif=exif)
    with Image.open(path_stem + ".jpg") as check:  # the tag must bring back the upright view
        assert ImageOps.exif_transpose(check).size == image.size
    words = f"JPEG q{quality}"
    if orientation != 1:
        words += f", stored sideways with EXIF orientation {orientation}"
    return path_stem + ".jpg", words


def contact_sheet(rows, folder: str, path: str, columns: int = 20, cell: int = 56) -> None:
    """A small PNG of every image (upright, as a viewer shows it) with its label in red."""
    lines = -(-len(rows) // columns)
    sheet = Image.new("RGB", (columns * cell, lines * cell), (128, 128, 128))
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(rows):
        with Image.open(os.path.join(folder, row["file"])) as image:
            thumb = ImageOps.exif_transpose(image).convert("RGB")
        thumb.thumbnail((cell - 2, cell - 2))
        x, y = (i % columns) * cell + 1, (i // columns) * cell + 1
        sheet.paste(thumb, (x, y))
        draw.text((x + 1, y), str(row["label"]), fill=(230, 0, 0))
    sheet.quantize(64).save(path, optimize=True)


def mnist_test_images():
    """(images (10000, 28, 28) uint8, labels) of MNIST's test set, from $MNISTLAB_DATA."""
    try:
        from mnistlab.data.mnist import load_mnist
    except ImportError:
        import sys

        sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))
        from mnistlab.data.mnist import load_mnist
    _, (images, labels) = load_mnist(download=False)
    return images, labels


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=HERE, help="folder for images/, labels.csv, contact_sheet.png"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (default: the set's)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    test_images, test_labels = mnist_test_images()
    pools = {d: list(rng.permutation(np.nonzero(test_labels == d)[0])) for d in range(10)}
    folder = os.path.join(args.out, "images")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):  # our own output from an earlier run
        if name.endswith((".jpg", ".png")):
            os.remove(os.path.join(folder, name))
    rows = []
    for kind in KINDS:
        digits = rng.permutation(np.repeat(np.arange(10), PER_KIND // 10))
        for number, digit in enumerate(digits):
            index = int(pools[int(digit)].pop())
            image, description, photo = make_image(
                rng, kind, int(digit), (index, test_images[index])
            )
            stem = os.path.join(folder, f"{kind}_{number:02d}")
            path, words = save(image, stem, rng, photo, allow_exif=kind != "offcentre")
            rows.append(
                {
                    "file": os.path.basename(path),
                    "label": int(digit),
                    "kind": kind,
                    "description": f"{description}; {words}",
                }
            )
    with open(os.path.join(args.out, "labels.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "label", "kind", "description"])
        writer.writeheader()
        writer.writerows(rows)
    contact_sheet(rows, folder, os.path.join(args.out, "contact_sheet.png"))
    total = sum(os.path.getsize(os.path.join(folder, row["file"])) for row in rows)
    print(f"{len(rows)} images, {total / 1e6:.2f} MB, in {folder}")


if __name__ == "__main__":
    main()
