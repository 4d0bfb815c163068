"""The dropout tutorials' experiment in Keras: validation accuracy and loss against the rate.

    python examples/keras_rate_sweep.py [--backend jax|torch|tensorflow] [--quick] [--epochs 40]
                                        [--rates 0.0,0.1,...] [--out keras_rate_sweep.png]

A Keras MLP (64 -> 256 -> 256 -> 10, ReLU) with ``fastdrop.keras.Dropout`` after each
hidden layer is trained on scikit-learn's digits (1797 8x8 images, 70 % train / 30 %
validation, stratified) for each rate from 0.0 to 0.9 in steps of 0.1, from the same
initial weights (``keras.utils.set_random_seed`` before each model). It prints a table
(final train and validation accuracy, validation loss, the best validation accuracy and
loss over the epochs) and plots validation accuracy and loss against the rate
(matplotlib, Agg backend). ``--quick``: 3 epochs and the rates 0.0, 0.5 and 0.9 (what the
tests run).

Needs keras (3), jax, torch or tensorflow, scikit-learn and matplotlib. The Keras
backend is ``--backend``, else ``KERAS_BACKEND``, else jax; it must be chosen before Keras
is imported, so this script imports Keras only after reading its arguments.
"""
from __future__ import annotations

import argparse
import os
import time

RATES = [round(0.1 * k, 1) for k in range(10)]
QUICK_RATES = [0.0, 0.5, 0.9]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["jax", "torch", "tensorflow"], default=None,
                    help="Keras backend (default: KERAS_BACKEND, else jax)")
    ap.add_argument("--quick", action="store_true",
                    help=f"3 epochs, rates {QUICK_RATES} (overridden by --epochs / --rates)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per rate (default 40)")
    ap.add_argument("--rates", type=str, default=None,
                    help="comma-separated rates (default 0.0, 0.1, ..., 0.9)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256, help="units of each hidden layer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="keras_rate_sweep.png", help="the plot (PNG)")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    args.epochs = args.epochs if args.epochs is not None else (3 if args.quick else 40)
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")
    if args.rates is None:
        args.rates = QUICK_RATES if args.quick else RATES
    else:
        try:
            args.rates = [float(r) for r in args.rates.split(",")]
        except ValueError:
            ap.error(f"--rates must be comma-separated numbers, got {args.rates!r}")
    if any(not 0.0 <= r < 1.0 for r in args.rates):
        ap.error("--rates must lie in [0, 1)")
    return args


def load_data(seed: int):
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    return train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)


def build_model(keras, fk, rate: float, hidden: int, seed: int):
    keras.utils.set_random_seed(seed)  # the same initial weights for every rate
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(hidden, activation="relu"), fk.Dropout(rate),
        keras.layers.Dense(hidden, activation="relu"), fk.Dropout(rate),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def sweep(args) -> list[dict]:
    import keras

    import fastdrop
    import fastdrop.keras as fk

    x_tr, x_va, y_tr, y_va = load_data(args.seed)
    rows = []
    for rate in args.rates:
        model = build_model(keras, fk, rate, args.hidden, args.seed)
        t0 = time.perf_counter()
        hist = model.fit(x_tr, y_tr, validation_data=(x_va, y_va), epochs=args.epochs,
                         batch_size=args.batch_size, verbose=0).history
        seconds = time.perf_counter() - t0
        train_loss, train_acc = model.evaluate(x_tr, y_tr, verbose=0)
        rows.append(dict(rate=rate, effective=fastdrop.effective_p(rate),
                         train_acc=train_acc, val_acc=hist["val_accuracy"][-1],
                         val_loss=hist["val_loss"][-1], best_val_acc=max(hist["val_accuracy"]),
                         best_val_loss=min(hist["val_loss"]), seconds=seconds))
        print(f"rate {rate:.1f}: val accuracy {rows[-1]['val_acc']:.4f}, "
              f"val loss {rows[-1]['val_loss']:.4f} ({seconds:.1f} s)", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| rate | train acc | val acc | val loss | best val acc | best val loss | fit s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['rate']:.1f} | {r['train_acc']:.4f} | {r['val_acc']:.4f} | "
                     f"{r['val_loss']:.4f} | {r['best_val_acc']:.4f} | "
                     f"{r['best_val_loss']:.4f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r["rate"] for r in rows]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    ax_acc.plot(rates, [r["val_acc"] for r in rows], "o-", label="final")
    ax_acc.plot(rates, [r["best_val_acc"] for r in rows], "s--", label="best epoch")
    ax_acc.set(xlabel="dropout rate", ylabel="validation accuracy")
    ax_loss.plot(rates, [r["val_loss"] for r in rows], "o-", label="final")
    ax_loss.plot(rates, [r["best_val_loss"] for r in rows], "s--", label="best epoch")
    ax_loss.set(xlabel="dropout rate", ylabel="validation loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.backend is not None:
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if os.environ["KERAS_BACKEND"] == "torch":
        import torch

        torch.set_num_threads(1)  # a model this small runs fastest on one thread
    import keras

    title = (f"fastdrop.keras.Dropout on digits: MLP 64-{args.hidden}-{args.hidden}-10, "
             f"{args.epochs} epochs, {keras.backend.backend()} backend")
    print(title, flush=True)
    t0 = time.perf_counter()
    rows = sweep(args)
    print()
    print(table(rows))
    print(f"\n{len(rows)} rates in {time.perf_counter() - t0:.1f} s")
    if not args.no_plot:
        plot(rows, args.out, title)
        print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
