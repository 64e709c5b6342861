#!/usr/bin/env bash
# The commands that made every picture in docs/figures/, which docs/tutorial.md shows.
# Each picture is drawn by mnistlab's own commands (or its API, where no command exists), from
# the runs that benchmarks/reproduce_tutorial.py trained (the tutorial's protocol, seed 7):
#   CNN_RUN      a finished cnn run          (default runs/reproduce/cnn-seed7)
#   LARGER_RUN   a finished larger_cnn run   (default runs/reproduce/larger_cnn-seed7)
#   BRANCH_RUN   a finished branch_cnn run   (default runs/reproduce/branch_cnn-seed7)
# The runs are only read. Usage, from the repository's root (about 3 CPU minutes):
#   MNISTLAB_DATA=../shared/data/mnist flock /tmp/mnistlab-heavy.lock bash docs/make_figures.sh
# Every PNG is then re-saved as an optimised 8-bit palette image (same pixels to the eye) so
# that each stays under 100 KB; tests/test_tutorial.py checks the size, and that every PNG
# in docs/figures/ is named in this script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FIGURES=docs/figures
CNN_RUN="${CNN_RUN:-runs/reproduce/cnn-seed7}"
LARGER_RUN="${LARGER_RUN:-runs/reproduce/larger_cnn-seed7}"
BRANCH_RUN="${BRANCH_RUN:-runs/reproduce/branch_cnn-seed7}"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$FIGURES"

# 1. samples.png: the first 16 training images and their labels
mnistlab samples --count 16 --out "$FIGURES/samples.png"

# 5. curves.png: loss and accuracy per epoch of the larger CNN
mnistlab curves "$LARGER_RUN" --out "$FIGURES/curves.png"

# 6. confusion.png and misclassified.png: the simple CNN on the test set
mnistlab evaluate "$CNN_RUN" --plots "$SCRATCH/evaluate" > /dev/null
cp "$SCRATCH/evaluate/confusion.png" "$FIGURES/confusion.png"
cp "$SCRATCH/evaluate/misclassified.png" "$FIGURES/misclassified.png"

# 7. photo-4.jpg: a simulated phone photo of a handwritten 4, from the own-digits check set;
#    photo-4-input.png: what the network sees after MNIST-style preprocessing (--show-input);
#    photo-4-naive.png: the photo only shrunk to 28x28 and inverted, for comparison
cp benchmarks/own_digits/images/pen_30.jpg "$FIGURES/photo-4.jpg"
mnistlab predict "$FIGURES/photo-4.jpg" --model "$CNN_RUN" --show-input "$SCRATCH/seen"
cp "$SCRATCH/seen/photo-4.png" "$FIGURES/photo-4-input.png"
python - "$FIGURES" <<'EOF'
import sys

import numpy as np
from PIL import Image, ImageOps

from mnistlab.serving.predict import save_input

folder = sys.argv[1]
photo = ImageOps.exif_transpose(Image.open(f"{folder}/photo-4.jpg")).convert("L")
save_input(np.asarray(ImageOps.invert(photo).resize((28, 28))), f"{folder}/photo-4-naive.png")
EOF

# 8. filters.png, responses.png (test image 0, a 7) and maximize.png: inside the simple CNN
mnistlab filters "$CNN_RUN" --out "$FIGURES/filters.png"
mnistlab responses "$CNN_RUN" test:0 --out "$FIGURES/responses.png"
mnistlab maximize "$CNN_RUN" --out "$FIGURES/maximize.png"

# 9. responses-add.png: the feature maps after the branch_cnn's element-wise Add
mnistlab responses "$BRANCH_RUN" test:0 --layer branch_add --out "$FIGURES/responses-add.png"

# 10. augment.png: the first training image, warped by mnistlab.training.augment.random_warp
python - "$FIGURES" <<'EOF'
import sys

import numpy as np

import mnistlab
from mnistlab import inspect as visualize
from mnistlab.training.augment import random_warp
from mnistlab.models.registry import to_input

(x_train, _), _ = mnistlab.load_mnist()
rng = np.random.default_rng(0)
five = to_input(np.repeat(x_train[:1], 8, axis=0))
images = np.concatenate([random_warp(five, rng), random_warp(five, rng, elastic=True)])[..., 0]
titles = ["affine"] * 8 + ["elastic"] * 8
path = f"{sys.argv[1]}/augment.png"
visualize.image_grid(images, titles, "One 5, sixteen ways", path, scale=(0, 1), columns=8)
EOF

# 12. deskew.png: the first 8 training images and what best_deskew's Deskew layer makes of them
python - "$FIGURES" <<'EOF'
import sys

import numpy as np

import mnistlab
from mnistlab import inspect as visualize
from mnistlab.models.layers import Deskew
from mnistlab.models.registry import to_input

(x_train, y_train), _ = mnistlab.load_mnist()
images = to_input(x_train[:8])
upright = np.asarray(Deskew()(images))
panels = np.concatenate([images, upright])[..., 0]
titles = [f"a {label}" for label in y_train[:8]] + ["deskewed"] * 8
path = f"{sys.argv[1]}/deskew.png"
visualize.image_grid(panels, titles, "Deskew: each digit sheared upright", path, scale=(0, 1), columns=8)
EOF

# 11. ensemble-mistakes.png: every test image that our best ensemble gets wrong: the kept
#     members of four designs (benchmarks/members/), each design weighted a quarter (15 best
#     at 1/60, 4 deotte at 1/16, 11 best5 at 1/44, 3 best_deskew at 1/12); nothing trains.
#     Their weights first: python benchmarks/members.py fetch URL_OR_PATH (see its README)
M=benchmarks/members
mnistlab ensemble --out "$SCRATCH/four-designs" > /dev/null \
  --runs $M/best-e40/member-{0..14} $M/deotte-e45/member-{0..3} $M/best5-e40/member-{0..10} \
  $M/best_deskew-e40/member-{0..2} \
  --weights $(printf '0.0166667 %.0s' {1..15}) $(printf '0.0625 %.0s' {1..4}) \
  $(printf '0.0227273 %.0s' {1..11}) $(printf '0.0833333 %.0s' {1..3})
mnistlab evaluate "$SCRATCH/four-designs" --plots "$SCRATCH/ensemble" > /dev/null
cp "$SCRATCH/ensemble/misclassified.png" "$FIGURES/ensemble-mistakes.png"

# Every test mistake of the shipped model, with its second choice
mnistlab evaluate --plots "$SCRATCH/shipped" > /dev/null
cp "$SCRATCH/shipped/misclassified.png" "$FIGURES/shipped-mistakes.png"

# Shrink: an optimised palette PNG of at most 128 colours per picture
python - "$FIGURES" <<'EOF'
import glob
import os
import sys

from PIL import Image

for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.png"))):
    image = Image.open(path).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {os.path.getsize(path) / 1000:.0f} KB")
EOF
