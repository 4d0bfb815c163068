"""A NumPy MLP with fastdrop dropout and hand-written backprop, trained on the digits.

    python3 examples/numpy_mlp.py [--p 0.5] [--epochs 40]

Needs scikit-learn for the (bundled, offline) digits data: pip install fastdrop[study].
The network, fastdrop.mlp.MLP, has a fastdrop.Dropout layer after each hidden ReLU; the
layers share one fastdrop.Generator, so the masks are a pure function of the seed, and the
backward pass regenerates them instead of storing them.
"""
import argparse

import numpy as np

from fastdrop.apps.mlp import MLP, SGD


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=float, default=0.5, help="hidden dropout rate")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise SystemExit("this example needs scikit-learn: pip install fastdrop[study]") from exc

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    # a small training split, so that the network overfits without dropout
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, train_size=200, stratify=y, random_state=0)

    for p in sorted({0.0, args.p}):
        net = MLP((64, args.width, args.width, 10), hidden_p=p, seed=args.seed,
                  dtype=np.float32)
        opt = SGD(net.params, lr=0.01, momentum=0.9)
        order_rng = np.random.default_rng(args.seed)
        for epoch in range(1, args.epochs + 1):
            order = order_rng.permutation(len(y_tr))
            for s in range(0, len(order), 32):
                idx = order[s:s + 32]
                loss, grads = net.loss_and_grads(x_tr[idx], y_tr[idx])  # dropout on
                opt.step(grads)
            if epoch % 10 == 0 or epoch == args.epochs:
                _, tr_acc = net.evaluate(x_tr, y_tr)                      # dropout off
                va_loss, va_acc = net.evaluate(x_va, y_va)
                print(f"p = {p:.1f}  epoch {epoch:3d}  train acc {100 * tr_acc:5.1f} %  "
                      f"val acc {100 * va_acc:5.1f} %  val loss {va_loss:.3f}")
        print()


if __name__ == "__main__":
    main()
