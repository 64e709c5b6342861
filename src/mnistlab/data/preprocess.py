"""A user's digit image (photo, scan, canvas drawing or MNIST-like file) as MNIST's 28x28 input.

MNIST was made by fitting each digit into a 20x20 box (aspect ratio kept, anti-aliased) and
placing that box in a 28x28 field so that the digit's centre of mass sits at the centre. We do
the same, after turning a real-world image into clean light ink on black:

1. load: path, bytes, file object, PIL image or array; EXIF orientation honoured; size bounded
   before decoding; transparency treated as paper;
2. polarity: dark ink on light paper is inverted (the ink is the side that more pixels stand
   out on, from a smooth paper surface fitted robustly, so a gradient of light is not ink);
3. paper: uneven lighting and soft shadows removed with a coarse background estimate (a grey
   opening of per-block percentiles; thick ink replaced by a robust quadratic fit);
4. ink: two thresholds above the paper noise (strong: Otsu's and half the peak contrast;
   weak: a quarter of the ink's level), connected blobs of weak pixels with strong ones in
   them; specks far smaller than the digit, or far from it, are dropped; gray levels
   (anti-aliasing) are kept;
5. hairline strokes, thinner than almost all of MNIST's, are thickened to 2 of 28 pixels;
6. fit the longest side to 20 pixels and shift the centre of mass to (14, 14), clipping nothing.

A clean drawing (a canvas: transparent, or one exact colour, behind the strokes) skips the
paper-surface fits of steps 2 and 3: its paper is that exact level (noise 0), its ink how far a
pixel is from it, and step 4's thresholds and blobs are found inside the box of the pixels that
differ from the paper (see _canvas_paper for the rule). A 300x300 drawing takes 2.2 ms instead
of 5.2 (decoding included); the 28x28 is the full pipeline's, except where the full pipeline's
paper estimate takes thick ink for paper and dims it (the fast path uses the exact level).

Example:
    >>> from mnistlab.data.preprocess import to_mnist
    >>> image = to_mnist("my_digit.jpg")  # (28, 28) uint8, light digit on black
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mnistlab.data.images import ImageError, _describe, load_image

BILINEAR, BICUBIC, BOX = Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.BOX


IMAGE_SIZE = 28  # pixels: MNIST's field
DIGIT_BOX = 20  # pixels: MNIST's digits fit a box this size, aspect ratio kept
WORK_SIZE = 1200  # pixels: longer images are reduced to this longest side before analysis
MIN_INK_CONTRAST = 40.0  # gray levels (of 255) that ink must stand out from the paper
MIN_INK_PIXELS = 20  # pixels at work size; a smaller largest ink blob means a blank page
SPECK_FRACTION = 0.02  # blobs with less ink than this fraction of the largest are specks
NEAR_FRACTION = 0.25  # blobs farther than this fraction of the digit's size are not part of it
MIN_STROKE_WIDTH = 1.5  # pixels of 28, at half ink; thinner (2% of MNIST's) is thickened ...
TARGET_STROKE_WIDTH = 2.0  # ... to this (MNIST's 15th percentile; its median is 2.4)


def to_mnist(source, preprocess: bool = True, *, name: str | None = None) -> np.ndarray:
    """Turns a digit image into MNIST's input: a light digit on black, 28x28.

    Args:
        source: anything load_image takes (path, bytes, file object, PIL image, array).
        preprocess: True fits any photo, scan or drawing as MNIST was made (see the module
            docstring); False takes a 28x28 image as it is, only converted to grayscale.
        name: what to call the image in error messages.

    Returns:
        (28, 28) uint8 array, 0 = background, 255 = ink.

    Raises:
        ImageError: unreadable input, a blank page, or (preprocess=False) a size not 28x28.

    Example:
        >>> to_mnist("seven.png").shape
        (28, 28)
    """
    label = name or _describe(source)
    image = load_image(source, name=label)
    try:
        gray = _grayscale(image)  # (H, W) float32, 0..255
    except (ValueError, OSError) as error:  # a colour mode Pillow cannot convert (LAB, ...)
        raise ImageError(f"{label} cannot be converted to grayscale ({error}).") from None
    if not preprocess:
        if gray.shape != (IMAGE_SIZE, IMAGE_SIZE):
            raise ImageError(
                f"{label} is {gray.shape[1]}x{gray.shape[0]} pixels, but without preprocessing "
                f"the image must be {IMAGE_SIZE}x{IMAGE_SIZE} (a light digit on black, like "
                "MNIST). Turn preprocessing on to fit any photo or drawing."
            )
        return np.round(gray).astype(np.uint8)
    gray = _reduce(gray, WORK_SIZE)
    paper = _canvas_paper(gray)
    if paper is None:  # a photo or scan: fit its paper, then find the digit's blobs
        ink = _ink_strength(gray)
        digit = _select_digit(ink, label)  # (h, w) float32 in 0..1, cropped to the ink
    else:  # a clean drawing: its ink is what differs from the canvas
        digit = _canvas_digit(gray, paper, label)
    return _fit_and_centre(digit)


def _grayscale(image: Image.Image) -> np.ndarray:
    """(H, W) float32 in 0..255; transparent pixels become paper (see _paper_behind)."""
    if image.mode.startswith("I;16"):
        return np.asarray(image, dtype=np.float32) / 257.0
    if image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        high = 1.0 if values.max() <= 1.0 else 255.0 if values.max() <= 255 else 65535.0
        return np.clip(values * (255.0 / high), 0, 255)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        return np.asarray(image.convert("L"), dtype=np.float32)
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    luma = np.asarray(rgba.convert("L"), dtype=np.float32)  # RGB's luma; alpha is ignored
    if alpha.min() == 255:  # opaque everywhere (a canvas filled white): no paper to add
        return luma
    alpha = alpha.astype(np.float32) / 255.0
    return luma * alpha + _paper_behind(luma, alpha) * (1.0 - alpha)


def _paper_behind(luma: np.ndarray, alpha: np.ndarray) -> float:
    """The gray level that transparency stands for.

    Mostly transparent (a canvas drawing: the opaque pixels are the strokes): the opposite of
    the strokes, so dark strokes get white paper. Mostly opaque (a cut-out scan): the opaque
    pixels' own median, which is their paper.
    """
    opaque = alpha > 0.5
    if not opaque.any():
        return 255.0
    if opaque.mean() < 0.5:
        return 255.0 if _median(luma[opaque]) < 128 else 0.0
    return _median(luma[opaque])


def _reduce(gray: np.ndarray, longest: int) -> np.ndarray:
    height, width = gray.shape
    if max(height, width) <= longest:
        return gray
    scale = longest / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(gray, "F").resize(size, BOX))


# ---------------------------------------------------------------- clean canvases

CANVAS_BORDER = 0.98  # fraction of the border pixels at the canvas's exact level, at least
CANVAS_AREA = 0.5  # fraction of all pixels at that level, at least
MIN_CANVAS_SIZE = 64  # pixels: smaller images keep the full pipeline (it is cheap there)


def _canvas_paper(gray: np.ndarray) -> float | None:
    """The paper's level if gray is a clean drawing, else None (a photo or scan).

    Clean: the most common level along the border is one exact value (transparency became
    one exact paper level in _grayscale; a drawing app's canvas is one colour) on at least
    98% of the border pixels and at least half of all pixels. A photo's or a scan's paper
    varies by a few gray levels from pixel to pixel (sensor noise, JPEG), so it never is.
    """
    if max(gray.shape) < MIN_CANVAS_SIZE:
        return None
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    levels, counts = np.unique(border, return_counts=True)
    paper = levels[np.argmax(counts)]
    if counts.max() < CANVAS_BORDER * border.size:
        return None
    if np.count_nonzero(gray == paper) < CANVAS_AREA * gray.size:
        return None
    return float(paper)


def _canvas_digit(gray: np.ndarray, paper: float, label: str) -> np.ndarray:
    """A clean drawing's digit, as _select_digit finds it, from the strokes' box alone.

    Outside the box of the pixels that differ from the paper the ink is exactly 0, so the
    thresholds (paper noise 0, Otsu's with those zeros counted) and the blobs are those of
    the whole image, found on a fraction of its pixels.
    """
    differs = gray != paper
    if not differs.any():
        raise _blank(label)
    top, left, bottom, right = _bounds(differs)
    crop = gray[top:bottom, left:right]
    dark = np.count_nonzero(crop < paper) > np.count_nonzero(crop > paper)  # no noise here
    ink = _ink_against(crop, paper, dark)
    levels = _ink_levels(ink, label, paper_pixels=gray.size - crop.size)
    return _select_digit(ink, label, levels)


# ---------------------------------------------------------------- paper and ink


def _ink_strength(gray: np.ndarray) -> np.ndarray:
    """(H, W) float32: how much each pixel stands out from the paper, 0 = paper, ~255 = ink.

    Polarity: the paper's level is a smooth surface (a robust quadratic fit to block
    medians, so lighting gradients are paper); ink is the side on which more pixels lie far
    from it. The paper under the ink is then the per-block lower envelope of the ink-lifted
    image (25th percentiles, ink covers less than 3/4 of most blocks), grey-opened over 3x3
    blocks (ink up to 3 blocks wide), interpolated bilinearly. Blocks still above a robust
    quadratic fit by more than half the ink's contrast are thicker ink and get the fit; those
    less far above are paper in a shadow, which is kept, so that the shadow is removed.
    """
    height, width = gray.shape
    if max(height, width) < 64:  # an icon or MNIST-like file: the outermost pixels are paper
        paper = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
        return _ink_against(gray, paper, _ink_is_dark(gray - paper))
    block = int(np.ceil(max(height, width) / 24))  # pixels per block side
    rows, cols = -(-height // block), -(-width // block)
    padded = np.pad(gray, ((0, rows * block - height), (0, cols * block - width)), mode="edge")
    tiles = padded.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    darkest, low, middle, high, brightest = _quantiles(tiles, (0.01, 0.25, 0.5, 0.75, 0.99))

    def upsample(grid: np.ndarray) -> np.ndarray:  # block grid -> (H, W)
        full = Image.fromarray(grid, "F").resize((cols * block, rows * block), BILINEAR)
        return np.asarray(full)[:height, :width]

    middle = middle.astype(np.float32)
    dark_ink = _ink_is_dark(gray - upsample(_fit_surface(middle, one_sided=False)))
    if dark_ink:
        lifted, lifted_paper, lifted_ink = 255.0 - gray, 255.0 - high, 255.0 - darkest
    else:
        lifted, lifted_paper, lifted_ink = gray, low, brightest
    grid = _filter3(_filter3(lifted_paper.astype(np.float32), np.minimum), np.maximum)
    surface = _fit_surface(grid, one_sided=True)
    contrast = float((lifted_ink - surface).max())  # of the ink's darkest (lifted: highest) 1%
    grid = np.where(grid - surface > max(8.0, 0.5 * contrast), surface, grid)
    background = float(np.median(grid)) if grid.max() - grid.min() < 12 else upsample(grid)
    if dark_ink:  # reflected light: ink contrast scales with the paper's brightness
        return (lifted - background) * (255.0 / np.maximum(255.0 - background, 16.0))
    return lifted - background


def _ink_against(gray: np.ndarray, paper: float, dark: bool) -> np.ndarray:
    """How far each pixel stands out from one paper level, float32: dark ink scaled by the
    paper's brightness (reflected light: its contrast grows with the light), light ink as is."""
    if dark:
        return (np.float32(paper) - gray) * np.float32(255.0 / max(float(paper), 16.0))
    return gray - np.float32(paper)


def _ink_is_dark(residual: np.ndarray) -> bool:
    """True if more pixels lie far below the paper's level than far above it."""
    sample = residual[:: 1 + residual.shape[0] // 300, :: 1 + residual.shape[1] // 300]
    sigma = 1.4826 * float(np.median(np.abs(sample - np.median(sample))))
    far = max(30.0, 6.0 * sigma)  # gray levels beyond the paper's own variation
    return np.count_nonzero(residual < -far) > np.count_nonzero(residual > far)


def _fit_surface(grid: np.ndarray, one_sided: bool) -> np.ndarray:
    """A quadratic surface in x and y fitted to grid, robust to blocks of ink.

    Light falls smoothly on paper (gradients, vignetting), so paper is what a quadratic
    fits; blocks that stand out (above it if one_sided, else either side) are left out: up
    to 40% of the blocks may be ink.
    """
    rows, cols = np.indices(grid.shape)
    x, y = cols / max(1, grid.shape[1] - 1), rows / max(1, grid.shape[0] - 1)
    terms = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)
    values = grid.ravel().astype(np.float64)
    fit = np.full(values.shape, np.median(values))  # start from the majority: paper
    if values.size < 12:
        return fit.reshape(grid.shape).astype(np.float32)
    chosen = None
    for _ in range(10):  # least trimmed squares: refit to the 60% of blocks that fit best
        misfit = values - fit if one_sided else np.abs(values - fit)
        paper = misfit <= _quantiles(misfit, (0.6,))[0]
        if chosen is not None and np.array_equal(paper, chosen):
            break  # the same blocks give the same fit: converged
        chosen = paper
        fit = terms @ np.linalg.lstsq(terms[paper], values[paper], rcond=None)[0]
    return fit.reshape(grid.shape).astype(np.float32)


def _quantiles(values: np.ndarray, quantiles: tuple) -> np.ndarray:
    """np.quantile(values, quantiles, axis=-1) (its linear method, the same values), by one
    sort: numpy's own costs more than the sort on small arrays, and more still on ties.

    Returns:
        (len(quantiles), *values.shape[:-1]) float64.
    """
    ordered = np.sort(values, axis=-1)
    count = ordered.shape[-1]
    rows = []
    for quantile in quantiles:
        index = (count - 1) * quantile  # numpy's virtual index, as it computes it
        below = min(max(int(np.floor(index)), 0), count - 1)
        above = min(below + 1, count - 1)
        gamma = np.float64(index - np.floor(index)) if index < count - 1 else np.float64(0.0)
        low, high = ordered[..., below], ordered[..., above]
        step = high - low  # in the values' dtype, as numpy's _lerp
        rows.append(high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma)
    return np.stack(rows).astype(np.float64)


def _filter3(grid: np.ndarray, reduce) -> np.ndarray:
    """3x3 min or max filter (edges repeated)."""
    padded = np.pad(grid, 1, mode="edge")
    out = grid.copy()
    for dy in range(3):
        for dx in range(3):
            out = reduce(out, padded[dy : dy + grid.shape[0], dx : dx + grid.shape[1]])
    return out


def _otsu(values: np.ndarray, zeros: int = 0) -> float:
    """Otsu's threshold of values in 0..255 (256 bins), with zeros more values of 0."""
    # np.histogram(values, 256, (0, 256)) for values in 0..255: bin i holds [i, i + 1)
    counts = np.bincount(values.astype(np.int64).ravel(), minlength=256)[:256].astype(np.float64)
    counts[0] += zeros
    edges = np.arange(257, dtype=np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between)) + 1])


# ---------------------------------------------------------------- the digit


def _select_digit(ink: np.ndarray, label: str, levels=None) -> np.ndarray:
    """The digit's ink, cropped: (h, w) float32 in 0..1, 1 = full ink, specks removed.

    levels: _ink_levels(ink, label) when None (a clean drawing's crop brings its own).

    Thresholds: strong (sure ink: above Otsu's threshold and half the contrast of the 50
    strongest pixels) and weak (edges, anti-aliasing: a quarter of the ink's typical level),
    both above the paper's noise. A blob of weak pixels is kept if it has strong pixels, is
    not a speck, and is near the largest.
    """
    strong, weak, _ = levels or _ink_levels(ink, label)
    strong_ink, weak_ink = ink > strong, ink > weak
    top, left, bottom, right = _bounds(weak_ink)  # blobs are found inside the weak ink's box
    rows, starts, ends, labels = _label_runs(weak_ink[top:bottom, left:right])
    if labels.max() == 0:  # one blob, with the strong ink in it (a drawing's usual case)
        if int((ends - starts).sum()) < MIN_INK_PIXELS:
            raise _blank(label)
        mask = weak_ink[top:bottom, left:right]
    else:
        box, runs = (top, left, bottom, right), (rows, starts, ends, labels)
        top, left, bottom, right, mask = _digit_mask(ink, weak, strong_ink, box, runs, label)
    crop = ink[top:bottom, left:right]
    level = _median(crop[mask & (crop > strong)])
    digit = np.where(mask, np.clip((crop - weak) / max(level - weak, 1e-3), 0, 1), 0)
    return _thicken(digit.astype(np.float32))


def _digit_mask(ink, weak, strong_ink, box, runs, label):
    """The box (top, left, bottom, right) and mask of the blobs that make the digit.

    Args:
        box: the weak ink's box; runs: _label_runs of the weak ink inside it.
    """
    top, left, bottom, right = box
    rows, starts, ends, labels = runs
    region, region_strong = ink[top:bottom, left:right], strong_ink[top:bottom, left:right]
    mass, pixels, boxes = _blob_stats(region, weak, region_strong, rows, starts, ends, labels)
    rows, starts, ends = rows + top, starts + left, ends + left  # back to ink's coordinates
    boxes += np.array([top, left, top, left])
    main = int(np.argmax(mass))
    if pixels[main] < MIN_INK_PIXELS:
        raise _blank(label)
    keep = _digit_blobs(mass, boxes, main)
    digit_box = np.concatenate([boxes[keep, :2].min(0), boxes[keep, 2:].max(0)])
    top, left, bottom, right = (int(v) for v in digit_box)
    mask = _runs_mask(
        rows[keep[labels]] - top,
        starts[keep[labels]] - left,
        ends[keep[labels]] - left,
        (bottom - top, right - left),
    )
    return top, left, bottom, right, mask


def _runs_mask(rows, starts, ends, shape) -> np.ndarray:
    """(H, W) bool: True on the runs [start, end) of each row (runs do not overlap)."""
    steps = np.zeros((shape[0], shape[1] + 1), np.int32)
    np.add.at(steps, (rows, starts), 1)
    np.add.at(steps, (rows, ends), -1)
    return np.cumsum(steps, axis=1)[:, :-1] > 0


def _ink_levels(ink: np.ndarray, label: str, paper_pixels: int | None = None):
    """strong, weak: the two thresholds of _select_digit; level: the strong ink's median.

    paper_pixels: None for a whole image; for a clean drawing's crop, the number of pixels
    around it, all exactly paper (ink 0): the paper's level and noise are then 0.

    Raises:
        ImageError: no ink stands out from the paper (a blank page).
    """
    if paper_pixels is None:
        sample = ink[:: 1 + ink.shape[0] // 300, :: 1 + ink.shape[1] // 300]  # for medians
        centre = _median(sample)
        sigma = 1.4826 * _median(np.abs(sample - centre))  # paper noise, robust to ink
    else:
        centre, sigma = 0.0, 0.0
    noise_floor = centre + max(6.0 * sigma, 8.0)
    peak = _fiftieth_largest(ink)
    otsu = _otsu(np.clip(ink, 0, 255), zeros=paper_pixels or 0)
    strong = max(noise_floor, otsu, centre + 0.5 * (peak - centre))
    strong_ink = ink > strong
    if float(ink.max()) - centre < MIN_INK_CONTRAST or not strong_ink.any():
        raise _blank(label)
    level = _median(ink[strong_ink])  # typical ink
    return strong, max(noise_floor, centre + 0.25 * (level - centre)), level


def _blank(label: str) -> ImageError:
    return ImageError(
        f"No digit found in {label}: the page looks blank (no ink stands out from the paper "
        f"by {MIN_INK_CONTRAST:.0f} gray levels). Write the digit darker or larger and try again."
    )


def _median(values: np.ndarray) -> float:
    """float(np.median(values)), faster when most values are one (a canvas's paper: 0).

    A value v is the median when fewer than half the values lie below it and fewer than half
    above; v is guessed as the median of every 16th value and checked by two counts.
    """
    flat = values.ravel()
    guess = np.median(flat[::16])
    below, above = np.count_nonzero(flat < guess), np.count_nonzero(flat > guess)
    if 2 * below < flat.size - 1 and 2 * above < flat.size - 1:  # both middle values are guess
        return float(guess)
    return float(np.median(flat))


def _fiftieth_largest(values: np.ndarray) -> float:
    """The 50th largest value (the largest for 50 values or fewer).

    np.partition takes ~10 ms on a 300x300 drawing whose strokes are saturated (thousands of
    equal values); most drawings have 50 values at the maximum, and a sort costs ~0.5 ms.
    """
    flat = values.ravel()
    top = flat.max()
    if flat.size <= 50 or np.count_nonzero(flat == top) >= 50:
        return float(top)
    return float(np.sort(flat)[-50])


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """top, left, bottom, right (exclusive) of a (H, W) bool mask's True pixels; one exists."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _blob_stats(ink, weak, strong_ink, rows, starts, ends, labels):
    """Per blob: ink mass above weak (0 without strong_ink pixels), pixel count, box.

    Returns:
        mass (n,) float, pixels (n,) int, boxes (n, 4) int: top, left, bottom, right (exclusive).
    """
    count = int(labels.max()) + 1

    def per_blob(values: np.ndarray) -> np.ndarray:  # sums of (H, W) values over each blob
        cumulative = np.pad(np.cumsum(values, axis=1), ((0, 0), (1, 0)))
        return np.bincount(labels, cumulative[rows, ends] - cumulative[rows, starts], count)

    mass = per_blob(np.clip(ink - weak, 0, None))
    mass[per_blob(strong_ink) == 0] = 0
    pixels = np.bincount(labels, ends - starts, count)
    boxes = np.zeros((count, 4), np.int64)
    boxes[:, :2] = 1 << 30
    np.minimum.at(boxes[:, 0], labels, rows)
    np.minimum.at(boxes[:, 1], labels, starts)
    np.maximum.at(boxes[:, 2], labels, rows + 1)
    np.maximum.at(boxes[:, 3], labels, ends)
    return mass, pixels, boxes


def _digit_blobs(mass: np.ndarray, boxes: np.ndarray, main: int) -> np.ndarray:
    """(n,) bool: the largest blob and, repeatedly, the non-speck blobs near the digit so far."""
    keep = np.zeros(len(mass), bool)
    keep[main] = True
    candidates = mass >= SPECK_FRACTION * mass[main]
    top, left, bottom, right = boxes[main]
    while True:
        margin = NEAR_FRACTION * max(bottom - top, right - left)
        near = (
            candidates
            & ~keep
            & (boxes[:, 0] < bottom + margin)
            & (boxes[:, 2] > top - margin)
            & (boxes[:, 1] < right + margin)
            & (boxes[:, 3] > left - margin)
        )
        if not near.any():
            return keep
        keep |= near
        (top, left), (bottom, right) = boxes[keep, :2].min(0), boxes[keep, 2:].max(0)


def _label_runs(mask: np.ndarray):
    """8-connected components of a (H, W) bool mask, as runs of True along rows.

    Runs on neighbouring rows that touch are joined; each run's label is the smallest index of
    a run in its component, found for all runs at once (numpy, no loop over runs).

    Returns:
        rows, starts, ends (exclusive), labels: four (runs,) int arrays; labels are 0..n-1,
        numbered in the order of each component's first run.
    """
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    # np.nonzero's (rows, columns) from flat indices: a tenth of its time on a drawing's mask
    rows, starts = np.divmod(np.flatnonzero(edges == 1), edges.shape[1])
    ends = np.flatnonzero(edges == -1) % edges.shape[1]  # row-major: each start with its end
    here, above = _touching_runs(rows, starts, ends, mask.shape[1] + 2)
    roots = np.arange(len(rows))
    while True:  # hook each run's root onto the smaller root across a touching pair, then jump
        low = np.minimum(roots[here], roots[above])
        hooked = roots.copy()
        np.minimum.at(hooked, roots[here], low)
        np.minimum.at(hooked, roots[above], low)
        while not np.array_equal(jumped := hooked[hooked], hooked):
            hooked = jumped
        if np.array_equal(hooked, roots):
            break
        roots = hooked
    _, labels = np.unique(roots, return_inverse=True)
    return rows, starts, ends, labels.reshape(-1)


def _touching_runs(rows, starts, ends, stride: int):
    """Pairs (here, above) of runs on rows r and r - 1 that touch directly or diagonally.

    Runs [s, e) touch when s_above <= e_here and s_here <= e_above. Along row-major order both
    starts and ends increase, so the runs above that touch one run are a contiguous range.
    """
    start_keys, end_keys = rows * stride + starts, rows * stride + ends
    previous = (rows - 1) * stride
    first = np.searchsorted(end_keys, previous + starts, side="left")  # e_above >= s_here
    last = np.searchsorted(start_keys, previous + ends, side="right")  # s_above <= e_here
    counts = np.maximum(last - first, 0)
    here = np.repeat(np.arange(len(rows)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return here, np.repeat(first, counts) + offsets


def _thicken(digit: np.ndarray) -> np.ndarray:
    """Widens hairline strokes (a grey dilation) so that they reach MNIST's stroke width.

    Stroke width is estimated as 2 x area / boundary pixels of the ink (exact for a long
    stroke of width 2 or more), then measured in pixels of the final 28x28 image.
    """
    ink = digit >= 0.5
    if not ink.any():
        return digit
    padded = np.pad(ink, 1)
    interior = ink & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    width = 2.0 * ink.sum() / max(1, int((ink & ~interior).sum()))  # work pixels
    scale = DIGIT_BOX / max(digit.shape)  # 28x28 pixels per work pixel
    if width * scale >= MIN_STROKE_WIDTH:
        return digit
    radius = int(np.ceil((TARGET_STROKE_WIDTH - width * scale) / (2 * scale)))
    digit = np.pad(digit, radius)
    return _running_max(_running_max(digit, radius, 0), radius, 1)


def _running_max(values: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Max over a window of 2*radius+1 along axis (van Herk / Gil-Werman, O(1) per pixel)."""
    window = 2 * radius + 1
    values = np.moveaxis(values, axis, -1)
    length = values.shape[-1]
    extra = -(length + 2 * radius) % window
    widths = [(0, 0)] * (values.ndim - 1) + [(radius, radius + extra)]
    padded = np.pad(values, widths, constant_values=-np.inf)  # outside never wins
    blocks = padded.reshape(*padded.shape[:-1], -1, window)
    prefix = np.maximum.accumulate(blocks, axis=-1).reshape(padded.shape)
    suffix = np.maximum.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(padded.shape)
    out = np.maximum(suffix[..., : padded.shape[-1] - window + 1], prefix[..., window - 1 :])
    return np.moveaxis(out[..., :length], -1, axis)


def _fit_and_centre(digit: np.ndarray) -> np.ndarray:
    """Fits (h, w) ink into DIGIT_BOX, centre of mass at (14, 14): (28, 28) uint8."""
    height, width = digit.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = BOX if scale < 1 else BICUBIC
    small = np.clip(np.asarray(Image.fromarray(digit, "F").resize(size, resample)), 0, 1)
    total = float(small.sum()) or 1.0
    centre_row = float(small.sum(axis=1) @ np.arange(small.shape[0])) / total
    centre_col = float(small.sum(axis=0) @ np.arange(small.shape[1])) / total
    middle = IMAGE_SIZE / 2  # MNIST's digits have their centre of mass at index 14.0
    top = int(np.clip(np.floor(middle - centre_row + 0.5), 0, IMAGE_SIZE - small.shape[0]))
    left = int(np.clip(np.floor(middle - centre_col + 0.5), 0, IMAGE_SIZE - small.shape[1]))
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    return np.round(canvas * 255).astype(np.uint8)
