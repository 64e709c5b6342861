"""The peer: the tutorial's networks as a plain PyTorch loop (pytorch/examples mnist style).

The whole data set sits in memory as tensors; each epoch shuffles with ``randperm``, steps
through batches of 200 with Adam (lr 0.001) on the cross-entropy of the logits (the same math
as softmax + categorical cross-entropy), then evaluates the test images. Nothing is tuned;
the only additions are the epoch timer and a JSON line at the end.

``--precision mixed_bfloat16`` is the loop one setting away, PyTorch's automatic mixed
precision on the CPU: the forward pass and the loss, and the evaluation, under
``torch.autocast("cpu", dtype=torch.bfloat16)``; the weights and Adam's state stay float32
(benchmarks/speed.py sets it against mnistlab's bfloat16 default).

Usage:
    python benchmarks/plain/torch_loop.py --model cnn --epochs 3
    python benchmarks/plain/torch_loop.py --model cnn --epochs 3 --precision mixed_bfloat16
"""

from __future__ import annotations

import sys
import time

import peer

MODELS = ("mlp", "cnn", "larger_cnn", "branch_cnn")
PRECISIONS = ("float32", "mixed_bfloat16")  # the second: bfloat16 autocast, float32 weights


def build(name: str):
    import torch
    from torch import nn

    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 784), nn.ReLU(), nn.Linear(784, 10))
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.2),
            nn.Flatten(), nn.Linear(12 * 12 * 32, 128), nn.ReLU(), nn.Linear(128, 10),
        )  # fmt: skip
    if name == "larger_cnn":
        return nn.Sequential(
            nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(30, 15, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.2),
            nn.Flatten(), nn.Linear(5 * 5 * 15, 128), nn.ReLU(),
            nn.Linear(128, 50), nn.ReLU(), nn.Linear(50, 10),
        )  # fmt: skip
    if name == "branch_cnn":

        class BranchCNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.left = nn.Conv2d(1, 16, 1)
                self.right = nn.Conv2d(1, 16, 5, padding=2)
                self.head = nn.Sequential(
                    nn.MaxPool2d(2), nn.Dropout(0.2), nn.Flatten(),
                    nn.Linear(14 * 14 * 16, 128), nn.ReLU(), nn.Linear(128, 10),
                )  # fmt: skip

            def forward(self, x):
                return self.head(self.left(x) + torch.relu(self.right(x)))

        return BranchCNN()
    raise ValueError(f"Unknown model '{name}'. Available: {', '.join(MODELS)}.")


def main(argv=None) -> int:
    args = peer.parse_args(__doc__.splitlines()[0], MODELS, argv, precisions=PRECISIONS)
    import torch
    import torch.nn.functional as F

    from mnistlab.data.mnist import load_mnist

    torch.manual_seed(7)
    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_train = torch.from_numpy(x_train[: args.train_images]).float().div(255).unsqueeze(1)
    y_train = torch.from_numpy(y_train[: args.train_images]).long()
    x_test = torch.from_numpy(x_test[: args.val_images]).float().div(255).unsqueeze(1)
    y_test = torch.from_numpy(y_test[: args.val_images]).long()

    model = build(args.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def mixed():  # float32 (autocast off) or bfloat16 autocast, as --precision says
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision != "float32")

    seconds = []
    started = time.perf_counter()
    for _ in range(args.epochs):
        epoch_started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train))
        for start in range(0, len(x_train), args.batch_size):
            batch = order[start : start + args.batch_size]
            optimizer.zero_grad()
            with mixed():
                loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad(), mixed():
            for start in range(0, len(x_test), 1000):
                logits = model(x_test[start : start + 1000])
                correct += (logits.argmax(1) == y_test[start : start + 1000]).sum().item()
        seconds.append(time.perf_counter() - epoch_started)
    peer.report(seconds, started, correct / len(x_test), "torch", precision=args.precision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
