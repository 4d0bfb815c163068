"""The dropout study (fastdrop.apps.study) and its NumPy network (fastdrop.apps.mlp)."""
import json
import sys
from dataclasses import replace

import numpy as np
import pytest

import fastdrop
from fastdrop.apps.mlp import MLP, SGD, softmax_cross_entropy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_config(**kw):
    study = pytest.importorskip("fastdrop.apps.study")
    cfg = replace(study.QUICK, sizes=(64, 16, 16, 10), n_train=100, n_val=150, epochs=3,
                  rates=(0.0, 0.5), input_rates=(0.0, 0.2), mc_samples=4, capacity_width=8,
                  seeds=(0, 1), timing_rounds=1)
    return replace(cfg, **kw)


# ---- the network -------------------------------------------------------------------------


def _loss(net, x, y, state):
    """Training-mode loss with the generator rewound, so every call draws the same masks."""
    net.generator.set_state(state)
    logits, _ = net.forward(x, training=True)
    return softmax_cross_entropy(logits, y)[0]


@pytest.mark.parametrize("hidden_p,input_p,mode", [(0.0, 0.0, "inverted"),
                                                   (0.3, 0.0, "inverted"),
                                                   (0.5, 0.2, "inverted"),
                                                   (0.4, 0.1, "classic")])
def test_backprop_matches_finite_differences(hidden_p, input_p, mode):
    rng = np.random.default_rng(7)
    net = MLP((6, 5, 4, 3), hidden_p=hidden_p, input_p=input_p, mode=mode, seed=11)
    for b in net.b:  # non-zero biases, so that no ReLU input sits at its kink
        b[...] = rng.standard_normal(b.shape) * 0.1
    x = rng.standard_normal((4, 6))
    y = np.array([0, 2, 1, 2])
    state = net.generator.get_state()
    _, grads = net.loss_and_grads(x, y)
    assert net.generator.next_stream > state["stream"] or (hidden_p == input_p == 0)
    eps = 1e-6
    for param, grad in zip(net.params, grads):
        assert grad.shape == param.shape
        num = np.zeros_like(param)
        for idx in np.ndindex(param.shape):
            old = param[idx]
            param[idx] = old + eps
            lp = _loss(net, x, y, state)
            param[idx] = old - eps
            lm = _loss(net, x, y, state)
            param[idx] = old
            num[idx] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


def test_dropout_actually_drops_in_the_network():
    x = np.random.default_rng(0).random((8, 64))
    plain = MLP((64, 32, 10), seed=3)
    dropped = MLP((64, 32, 10), hidden_p=0.5, seed=3)
    for a, b in zip(plain.params, dropped.params):
        np.testing.assert_array_equal(a, b)  # same seed: same initial weights
    np.testing.assert_array_equal(plain.forward(x)[0], dropped.forward(x)[0])  # inference
    assert not np.array_equal(plain.forward(x, training=True)[0],
                              dropped.forward(x, training=True)[0])
    assert plain.hidden_dropout == [None]  # p = 0: no layer at all
    assert isinstance(dropped.hidden_dropout[0], fastdrop.Dropout)


def test_sgd_step_descends():
    rng = np.random.default_rng(1)
    net = MLP((10, 8, 3), seed=0)
    x, y = rng.standard_normal((32, 10)), rng.integers(0, 3, 32)
    opt = SGD(net.params, lr=0.1, momentum=0.0)
    before = net.evaluate(x, y)[0]
    for _ in range(20):
        opt.step(net.loss_and_grads(x, y)[1])
    assert net.evaluate(x, y)[0] < before


# ---- the study ---------------------------------------------------------------------------


def test_tiny_study_writes_report_and_plots(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    study = pytest.importorskip("fastdrop.apps.study")
    out = tmp_path / "report"
    res = study.run_study(tiny_config(), out=out, jobs=1, progress=True)
    err = capsys.readouterr().err
    assert "dropout study [" in err and "runs" in err  # the progress bar, on stderr
    for name in ("sweep.png", "curves.png", "convergence.png", "input_dropout.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000, name
    text = (out / "report.md").read_text()
    assert "## Verdicts" in text
    for i in range(1, 6):
        assert f"## Claim {i}" in text
    # a table per claim: header rows with the measured columns
    assert "| p | train acc | val acc | val loss | best val acc |" in text
    assert "| p | train acc | val acc | accuracy gap | loss gap |" in text
    assert "| p | epochs to converge |" in text
    assert "| | inverted | classic |" in text
    assert "| network | train acc | train loss |" in text
    assert text.count("supported**") >= 5
    # the numbers in the report are the ones measured
    a = res["analysis"]
    m = a["sweep"]["0.0"]["val_acc"][0]
    assert f"{100 * m:.1f}" in text
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["runs"]) == len(res["runs"]) == len(study.plan_runs(tiny_config()))
    assert 0.0 <= m <= 1.0
    for r in res["runs"]:
        assert len(r["history"]["val_acc"]) == 3
    # the twin check is exact for p = 0.5 (division by a power of two)
    assert a["claim4"]["twin_max_rel_diff"] < 1e-12


def test_study_is_deterministic():
    pytest.importorskip("sklearn")
    study = pytest.importorskip("fastdrop.apps.study")
    cfg = tiny_config(seeds=(3,), timing_rounds=0)
    one = study.run_study(cfg, progress=False)
    two = study.run_study(cfg, progress=False)
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    for r1, r2 in zip(one["runs"], two["runs"]):
        assert r1["spec"] == r2["spec"]
        for k in keys:
            assert r1["history"][k] == r2["history"][k]  # bit for bit
        assert r1["test_acc"] == r2["test_acc"]
        assert r1.get("expectation") == r2.get("expectation")
    # and a different seed gives different numbers
    three = study.run_study(replace(cfg, seeds=(4,)), progress=False)
    assert three["runs"][0]["history"]["val_loss"] != one["runs"][0]["history"]["val_loss"]


def test_parallel_jobs_give_the_same_numbers():
    pytest.importorskip("sklearn")
    study = pytest.importorskip("fastdrop.apps.study")
    cfg = tiny_config(seeds=(0,), rates=(0.0, 0.3), timing_rounds=0, epochs=2)
    serial = study.run_study(cfg, progress=False, jobs=1)
    parallel = study.run_study(cfg, progress=False, jobs=2)
    for r1, r2 in zip(serial["runs"], parallel["runs"]):
        assert r1["spec"] == r2["spec"]
        assert r1["history"]["val_loss"] == r2["history"]["val_loss"]


def test_plan_lists_each_run_once():
    study = pytest.importorskip("fastdrop.apps.study")
    cfg = tiny_config()
    specs = study.plan_runs(cfg)
    assert len(specs) == len(set(specs))
    keys = [(s.width, s.hidden_p, s.input_p, s.mode, s.seed) for s in specs]
    assert len(keys) == len(set(keys))
    # the p = 0.5 inverted run carries the claim-4 expectation check
    assert any(s.expectation_check and s.hidden_p == 0.5 and s.input_p == 0 for s in specs)


def test_rule_and_convergence_helpers():
    study = pytest.importorskip("fastdrop.apps.study")
    assert study.epochs_to_converge([0.1, 0.5, 0.9, 0.955, 0.96], 0.99) == 4
    assert study.differs((1.0, 0.1), (1.5, 0.2))
    assert not study.differs((1.0, 0.3), (1.5, 0.3))


def test_cli_quick(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    study = pytest.importorskip("fastdrop.apps.study")
    out = tmp_path / "q"
    rc = study.main(["--quick", "--out", str(out), "--no-progress", "--jobs", "1",
                     "--epochs", "2", "--no-plots"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "claim 1" in printed and "claim 5" in printed
    assert (out / "report.md").exists() and not (out / "sweep.png").exists()
    with pytest.raises(SystemExit):
        study.main(["--quick", "--full"])


@pytest.mark.parametrize("missing", ["sklearn", "matplotlib"])
def test_missing_extra_names_the_install_command(monkeypatch, missing, tmp_path, capsys):
    study = pytest.importorskip("fastdrop.apps.study")
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now fails
    with pytest.raises(ImportError, match=r"pip install fastdrop\[study\]"):
        study.require_extra(missing)
    assert study.main(["--quick", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "pip install fastdrop[study]" in capsys.readouterr().err


# ---- the package -------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["-m", "fastdrop", "study", "--help"],
                                  ["-m", "fastdrop.apps.study", "--help"]])
def test_study_command_line_entry_points(argv):
    import subprocess

    res = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: fastdrop study")
    assert "--quick" in res.stdout and "--no-progress" in res.stdout


def test_study_package_uses_only_the_public_api():
    """Its modules import fastdrop through `fastdrop` itself, the MLP through
    fastdrop.apps.mlp, and one another relatively."""
    import ast
    import pathlib

    study = pytest.importorskip("fastdrop.apps.study")
    folder = pathlib.Path(study.__file__).parent
    modules = sorted(folder.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    assert node.level == 1, (path.name, node.module)
                elif node.module.split(".")[0] == "fastdrop":
                    assert node.module in ("fastdrop", "fastdrop.apps.mlp"), \
                        (path.name, node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "fastdrop":
                        assert alias.name == "fastdrop", (path.name, alias.name)
