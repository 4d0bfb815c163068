"""A small PyTorch MLP on scikit-learn's digits with fastdrop.torch.Dropout.

    python examples/torch_mlp.py [--epochs 30] [--p 0.2] [--keep seed|mask] [--threads 1]
                                 [--compile] [--replace]

Needs torch and scikit-learn. Runs in a few seconds on a CPU (--compile adds the
compilation, tens of seconds). torch.manual_seed(0) makes the run reproducible: the
dropout seeds are drawn from torch's generator. --replace builds the model with torch's
nn.Dropout and swaps it with fastdrop.torch.replace_dropout; --compile trains through
torch.compile(model, fullgraph=True) (fastdrop's dropout is a torch operator: no graph
break, no recompile from step to step).
"""
import argparse
import time

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import fastdrop.torch as ft


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--p", type=float, default=0.2)
    ap.add_argument("--keep", choices=["seed", "mask"], default="seed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", action="store_true",
                    help="train through torch.compile(model, fullgraph=True)")
    ap.add_argument("--replace", action="store_true",
                    help="build with nn.Dropout, then fastdrop.torch.replace_dropout")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (fastdrop.torch follows them); a model this small "
                         "runs fastest on one")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=args.seed,
                                              stratify=y)

    if args.replace:
        model = nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Dropout(args.p),
            nn.Linear(128, 128), nn.ReLU(), nn.Dropout(args.p),
            nn.Linear(128, 10),
        )
        replaced = ft.replace_dropout(model, keep=args.keep)
        print("replaced:", [name for name, _ in replaced])
    else:
        model = nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), ft.Dropout(args.p, keep=args.keep),
            nn.Linear(128, 128), nn.ReLU(), ft.Dropout(args.p, keep=args.keep),
            nn.Linear(128, 10),
        )
    print(model)
    forward = torch.compile(model, fullgraph=True) if args.compile else model
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    lossf = nn.CrossEntropyLoss()
    batch = 64
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(len(x_tr))
        total = 0.0
        for i in range(0, len(x_tr), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = lossf(forward(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if epoch % 5 == 0 or epoch == 1:
            model.eval()
            with torch.no_grad():
                acc = (model(x_te).argmax(1) == y_te).float().mean().item()
            print(f"epoch {epoch:3d}  train loss {total / len(x_tr):.4f}  test accuracy {acc:.4f}")
    model.eval()
    with torch.no_grad():
        train_acc = (model(x_tr).argmax(1) == y_tr).float().mean().item()
        test_acc = (model(x_te).argmax(1) == y_te).float().mean().item()
    print(f"final: train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f} "
          f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
