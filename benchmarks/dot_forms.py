"""How fast XLA's CPU backend multiplies bfloat16 matrices, by the form the product reaches it in.

The products of the MLP's first layer (batch 200, 784 inputs, 784 units) on JAX, each form
compiled alone and timed as the median of 5 blocks of calls:
- forward: x @ kernel, both row-major, bfloat16 operands summed in float32;
- the kernel's gradient as autodiff writes it: the float32 output gradient g times the
  bfloat16 x, contracted over the batch (x read transposed in place);
- the same with g rounded to bfloat16 first;
- the same with x's transpose written out row by row first (layers.written_out_transpose, as
  layers._bfloat16_products_jax writes it);
- float32 x @ kernel, for scale.
Beside them, numpy's float32 matrix multiply, the speed benchmark's yardstick.

Usage:
    python benchmarks/dot_forms.py [--reps 300] [--out benchmarks/results]

Writes OUT/dot_forms.md and .json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

BATCH, INPUTS, UNITS = 200, 784, 784


def forms() -> dict:
    """{name: (function of x, kernel, g; the arguments' dtypes)}, each a product of the MLP's
    first layer's shapes in one form."""
    import jax
    import jax.numpy as jnp

    from mnistlab.fast.layers import written_out_transpose

    f32, bf16 = jnp.float32, jnp.bfloat16

    return {
        "forward, x @ kernel (bfloat16, row-major)": (
            lambda x, k, g: jnp.matmul(x, k, preferred_element_type=f32),
            (bf16, bf16, bf16),
        ),
        "kernel gradient as autodiff writes it (float32 g, x read transposed)": (
            lambda x, k, g: (
                jax.lax.dot_general(g, x, (((0,), (0,)), ((), ())), preferred_element_type=f32).T
            ),  # g.T @ x, then transposed, as in the jaxpr of jax.grad
            (bf16, bf16, f32),
        ),
        "kernel gradient, bfloat16 g, x read transposed": (
            lambda x, k, g: jnp.matmul(x.T, g, preferred_element_type=f32),
            (bf16, bf16, bf16),
        ),
        "kernel gradient, bfloat16 g, x's transpose written out (mnistlab)": (
            lambda x, k, g: jnp.matmul(written_out_transpose(x), g, preferred_element_type=f32),
            (bf16, bf16, bf16),
        ),
        "forward in float32": (lambda x, k, g: jnp.matmul(x, k), (f32, f32, f32)),
    }


def median_seconds(function, operands, reps: int) -> float:
    """Median seconds a call of function(*operands), over 5 blocks of reps // 5 calls, after
    a warm-up."""
    for _ in range(10):
        function(*operands).block_until_ready()
    blocks = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(max(1, reps // 5)):
            result = function(*operands)
        result.block_until_ready()
        blocks.append((time.perf_counter() - started) / max(1, reps // 5))
    return statistics.median(blocks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=300, help="timed calls per form")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)
    if args.reps < 5:
        raise SystemExit("--reps must be at least 5")
    import jax
    import numpy as np

    from mnistlab.core import runs
    from mnistlab.models.flops import matmul_gflops

    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.random((BATCH, INPUTS), dtype=np.float32),
        "k": rng.random((INPUTS, UNITS), dtype=np.float32),
        "g": rng.random((BATCH, UNITS), dtype=np.float32),
    }
    flops = 2 * BATCH * INPUTS * UNITS
    rows = []
    for name, (function, dtypes) in forms().items():
        compiled = jax.jit(function)
        operands = [
            jax.device_put(a.astype(d)) for a, d in zip(arrays.values(), dtypes, strict=True)
        ]
        seconds = median_seconds(compiled, operands, args.reps)
        rows.append({"form": name, "ms": 1000 * seconds, "gflops": flops / seconds / 1e9})
    numpy_gflops = matmul_gflops()
    command = "python benchmarks/dot_forms.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# bfloat16 products on XLA's CPU backend, by form",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {runs.machine_description()}; JAX {jax.__version__}  ",
        f"Written: {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"The MLP's first layer: ({BATCH} x {INPUTS}) by ({INPUTS} x {UNITS}), "
        f"{flops / 1e6:.0f} MFLOP a product; median of 5 blocks of {args.reps // 5} calls. "
        f"numpy's float32 matrix multiply: {numpy_gflops:.1f} GFLOP/s.",
        "",
        "| form | ms | GFLOP/s |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {r['form']} | {r['ms']:.3f} | {r['gflops']:.0f} |" for r in rows]
    os.makedirs(args.out, exist_ok=True)
    runs.write_json(
        os.path.join(args.out, "dot_forms.json"),
        {"command": command.strip(), "numpy_gflops": numpy_gflops, "forms": rows},
    )
    with runs.atomic_path(os.path.join(args.out, "dot_forms.md")) as temporary:
        with open(temporary, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
