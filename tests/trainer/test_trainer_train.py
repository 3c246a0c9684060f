"""The PyTorch trainer on CPU: determinism, accuracy, divergence, datasets, models, schedules."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kubetune_trainer import augment, data, models, params, train  # noqa: E402 - after torch


class Reports:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, step: int | None = None, final: bool = False, **metrics: float) -> None:
        self.calls.append({"step": step, "final": final, **metrics})


def quiet(message: str) -> None:
    pass


def run(**values: Any) -> tuple[list[train.EpochResult], Reports]:
    reports = Reports()
    results = train.run(params.parse_params({"threads": 1, **values}), report=reports, log=quiet)
    return results, reports


def test_two_cpu_runs_with_one_seed_give_identical_results() -> None:
    settings = {"epochs": 1, "model": "cnn", "width": 8, "rotation": 15.0, "shift": 0.1,
                "hflip": True, "dropout": 0.2, "seed": 3}
    first, _ = run(**settings)
    second, _ = run(**settings)
    assert first[0].val_loss == second[0].val_loss
    assert first[0].train_loss == second[0].train_loss
    other, _ = run(**{**settings, "seed": 4})
    assert other[0].val_loss != first[0].val_loss


def test_sensible_params_reach_95_percent_on_digits_and_report_each_epoch() -> None:
    started = time.perf_counter()
    results, reports = run(epochs=5, lr=3e-3, lr_schedule="cosine")
    elapsed = time.perf_counter() - started
    print(f"digits mlp, 5 epochs on 1 CPU thread: {elapsed:.2f} s, "
          f"val_accuracy={results[-1].val_accuracy:.4f}")
    assert results[-1].val_accuracy >= 0.95
    assert [c["step"] for c in reports.calls] == [1, 2, 3, 4, 5, 5]
    assert [c["final"] for c in reports.calls] == [False] * 5 + [True]
    for call in reports.calls:
        assert set(call) >= {"val_loss", "val_accuracy", "train_loss"}
        assert math.isfinite(call["val_loss"])
    assert reports.calls[-1]["val_loss"] == results[-1].val_loss


def test_every_report_holds_the_models_size_and_latency() -> None:
    results, reports = run(epochs=2, depth=2, width=32)
    # 64 inputs -> 32 -> 32 -> 10 classes, weights and biases.
    expected = (64 * 32 + 32) + (32 * 32 + 32) + (32 * 10 + 10)
    model = models.build_model(params.parse_params({"depth": 2, "width": 32}), (1, 8, 8), 10)
    assert models.count_parameters(model) == expected
    assert [c["params_count"] for c in reports.calls] == [expected] * 3
    latencies = {c["latency_ms"] for c in reports.calls}
    (latency,) = latencies  # measured once, before training: the same in every report
    assert 0 < latency < 1000
    assert set(results[-1].metrics()) == set(params.REPORTED_METRICS)


def test_inference_latency_is_the_median_of_the_timed_passes_after_the_warmup() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Dropout(0.5))
    model.train()
    ticks = iter([10.0, 10.002, 20.0, 20.009, 30.0, 30.004])  # the warmup pass is not timed
    ms = train.inference_latency_ms(model, torch.zeros(2, 4), repeats=3, warmup=1,
                                    clock=lambda: next(ticks))
    assert ms == pytest.approx(4.0)
    assert model.training  # its mode is restored
    generator_state = torch.get_rng_state()
    train.inference_latency_ms(model, torch.zeros(2, 4))
    assert torch.equal(torch.get_rng_state(), generator_state)  # no random draw: dropout off


def test_lr_10_ends_finite_or_fails_cleanly() -> None:
    for optimizer in ("sgd", "adam"):
        message = ""
        results: list[train.EpochResult] = []
        try:
            results, _ = run(epochs=2, lr=10.0, optimizer=optimizer)
        except train.DivergedError as exc:
            message = str(exc)
        assert "lower lr" in message or all(math.isfinite(r.val_loss) for r in results)
        assert message or len(results) == 2


def test_a_diverged_run_stops_with_a_message_and_reports_no_nan() -> None:
    reports = Reports()
    p = params.parse_params({"threads": 1, "epochs": 3, "lr": 1e6, "optimizer": "sgd"})
    with pytest.raises(train.DivergedError, match=r"epoch 1: .*lr=1000000.0"):
        train.run(p, report=reports, log=quiet)
    assert reports.calls == []


def test_an_npz_dataset_trains(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 6))
    labels = rng.integers(0, 3, 300)
    x = centres[labels] + rng.normal(0, 0.5, (300, 6))
    path = tmp_path / "blobs.npz"
    np.savez(path, x=x, y=labels)
    results, reports = run(data=str(path), epochs=3, lr=1e-2)
    assert results[-1].val_accuracy >= 0.9
    assert reports.calls[-1]["final"] is True


def test_image_options_on_flat_data_are_refused_before_training(tmp_path: Path) -> None:
    path = tmp_path / "flat.npz"
    np.savez(path, x=np.zeros((20, 4)), y=np.arange(20) % 2)
    for bad in ({"model": "cnn"}, {"rotation": 10.0}):
        with pytest.raises(data.DataError, match="flat features"):
            run(data=str(path), **bad)


def test_a_missing_gpu_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    with pytest.raises(data.DataError, match="no GPU is visible"):
        train.configure(params.parse_params({"device": "cuda"}))


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_the_cnn_pools_while_the_map_is_at_least_2x2(pooling: str) -> None:
    p = params.parse_params({"model": "cnn", "depth": 5, "width": 4, "pooling": pooling,
                             "activation": "gelu"})
    model = models.build_model(p, (1, 8, 8), 10)
    pools = [m for m in model if isinstance(m, torch.nn.MaxPool2d | torch.nn.AvgPool2d)]
    assert len(pools) == 3  # 8 -> 4 -> 2 -> 1, then no more
    assert all(type(m).__name__.lower().startswith(pooling) for m in pools)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_the_mlp_has_depth_hidden_layers_of_width() -> None:
    p = params.parse_params({"depth": 3, "width": 16, "activation": "tanh", "dropout": 0.5})
    model = models.build_model(p, (1, 8, 8), 10)
    linear = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(64, 16), (16, 16), (16, 16),
                                                                 (16, 10)]
    assert sum(isinstance(m, torch.nn.Tanh) for m in model) == 3
    assert sum(isinstance(m, torch.nn.Dropout) for m in model) == 3


def test_schedules() -> None:
    assert train.schedule_factor("constant", 70, 100) == 1.0
    assert train.schedule_factor("cosine", 0, 100) == 1.0
    assert train.schedule_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert train.schedule_factor("cosine", 100, 100) == pytest.approx(0.0)
    assert [train.schedule_factor("step", s, 100) for s in (0, 49, 50, 74, 75, 99)] == [
        1.0, 1.0, 0.1, 0.1, 0.01, 0.01]


def test_augmentation_flips_exactly_and_keeps_shapes() -> None:
    torch.manual_seed(0)
    images = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).reshape(2, 1, 4, 6)
    assert augment.augment(images, rotation=0.0, hflip=False, shift=0.0) is images
    flipped = augment.augment(images.repeat(16, 1, 1, 1), rotation=0.0, hflip=True, shift=0.0)
    originals = images.repeat(16, 1, 1, 1)
    mirrored = originals.flip(-1)
    same = torch.isclose(flipped, originals, atol=1e-4).flatten(1).all(1)
    mirror = torch.isclose(flipped, mirrored, atol=1e-4).flatten(1).all(1)
    assert bool((same | mirror).all())
    assert bool(mirror.any())
    assert bool(same.any())
    moved = augment.augment(images, rotation=30.0, hflip=False, shift=0.25)
    assert moved.shape == images.shape
    assert not torch.equal(moved, images)


def test_the_command_trains_and_prints_json_lines_outside_a_pod() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("POD_NAME", "KUBECONFIG")}
    env.update(KUBETUNE_PARAMS=json.dumps({"epochs": 2, "threads": 1}),
               KUBETUNE_METRIC="val_accuracy")
    done = subprocess.run([sys.executable, "-m", "kubetune_trainer", "--width=32"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(d["step"], d["final"]) for d in lines] == [(1, False), (2, False), (2, True)]
    assert set(lines[-1]["metrics"]) == set(params.REPORTED_METRICS)
    assert isinstance(lines[-1]["metrics"]["params_count"], int)
    assert "mlp with" in done.stderr
    assert "epoch 2/2" in done.stderr


def test_the_command_exit_statuses(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from kubetune_trainer.__main__ import main

    for name in ("KUBETUNE_PARAMS", "KUBETUNE_METRIC", "POD_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--colour=red"]) == 2
    assert "unknown parameter 'colour'" in capsys.readouterr().err
    assert main(["--data=/nonexistent/set.npz"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["--lr=1e6", "--optimizer=sgd", "--epochs=2"]) == 4
    captured = capsys.readouterr()
    assert "training diverged in epoch 1" in captured.err
    assert captured.out == ""  # nothing reported
    monkeypatch.setenv("KUBETUNE_METRIC", "f1")
    assert main([]) == 2
    assert "KUBETUNE_METRIC='f1'" in capsys.readouterr().err
