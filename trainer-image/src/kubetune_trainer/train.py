"""The training loop: data, model, optimiser and schedule from the parameters; one report per epoch.

``run`` does the work and calls ``report(step=epoch, **metrics)`` after every epoch and
``report(step=last, final=True, **metrics)`` at the end (``kubetune.sdk.report`` unless a test
passes its own). On CUDA it trains under bf16 autocast with the data in device memory (copied
from pinned host memory without blocking) or, for data too large for that, in pinned host
memory copied batch by batch; on CPU it is deterministic for a given seed and thread count.

Every report also describes the model itself, for studies that trade accuracy against cost:
``params_count``, its trainable weights (exact), and ``latency_ms``, the median wall time of
``LATENCY_REPEATS`` forward passes over a fixed batch (the first ``LATENCY_BATCH`` validation
examples), timed once before training on the trial's own device and threads (see
``inference_latency_ms`` for what moves it).

Divergence: when the training or validation loss stops being finite, ``run`` raises
:class:`DivergedError` after reporting nothing for that epoch; the command exits with status 4
and a message naming the epoch and the learning rate. A tuner then records a failed trial
rather than a made-up penalty value that would mislead its model of the objective.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn

from kubetune_trainer import augment, data, models
from kubetune_trainer.distributed import Group

__all__ = [
    "LATENCY_BATCH",
    "LATENCY_REPEATS",
    "LATENCY_WARMUP",
    "DivergedError",
    "EpochResult",
    "configure",
    "inference_latency_ms",
    "make_optimizer",
    "make_schedule",
    "run",
]

Reporter = Callable[..., None]

LATENCY_BATCH = 64
"""Examples in the batch whose forward pass ``latency_ms`` times (fewer if validation has fewer)."""
LATENCY_WARMUP = 3
"""Untimed passes first: allocator, caches and (on CUDA) kernel selection settle in them."""
LATENCY_REPEATS = 9
"""Timed passes; ``latency_ms`` is their median, so a few preempted passes do not move it."""


class DivergedError(RuntimeError):
    """The loss stopped being finite; the message names the epoch and the fix."""


@dataclass(frozen=True)
class EpochResult:
    """One epoch's results, and the model's size and latency (the same for every epoch)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    seconds: float
    samples_per_second: float
    params_count: int
    latency_ms: float

    def metrics(self) -> dict[str, float]:
        """What the epoch's report holds (``params.REPORTED_METRICS``)."""
        return {
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "train_loss": self.train_loss,
            "epoch_seconds": round(self.seconds, 4),
            "params_count": self.params_count,
            "latency_ms": round(self.latency_ms, 4),
        }


def _usable_cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)  # Linux: honours cpusets
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def configure(params: Mapping[str, Any]) -> torch.device:
    """Pick the device, seed torch, and on CPU make the run deterministic with few threads."""
    choice = params["device"]
    if choice == "cuda" and not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise data.DataError(
            f"device=cuda, but no GPU is visible (CUDA_VISIBLE_DEVICES={visible!r}); "
            "request a GPU in the pod's resources, or use device=auto or cpu"
        )
    # torch numbers only the devices in CUDA_VISIBLE_DEVICES, so "cuda" is the first of them.
    device = torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")
    torch.manual_seed(int(params["seed"]))
    if device.type == "cpu":
        threads = int(params["threads"]) or _usable_cpus()
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    return device


def make_optimizer(params: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    lr, decay = float(params["lr"]), float(params["weight_decay"])
    name = params["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=float(params["momentum"]),
                               weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=decay)


def schedule_factor(name: str, step: int, total: int) -> float:
    """The learning-rate multiplier at optimiser step ``step`` of ``total``. Pure."""
    progress = step / max(1, total)
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if name == "step":
        return 1.0 if progress < 0.5 else 0.1 if progress < 0.75 else 0.01
    return 1.0


def make_schedule(optimizer: torch.optim.Optimizer, name: str,
                  total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule_factor(name, step, total_steps)
    )


def inference_latency_ms(model: nn.Module, batch: torch.Tensor, *,
                         repeats: int = LATENCY_REPEATS, warmup: int = LATENCY_WARMUP,
                         clock: Callable[[], float] = time.perf_counter) -> float:
    """The median wall time, in milliseconds, of one forward pass of ``model`` over ``batch``:
    in eval mode (dropout off, batch norm on its running statistics), without gradients, under
    the bf16 autocast that evaluation uses on CUDA, after ``warmup`` untimed passes. On CUDA
    each pass is timed between two synchronisations, so it is the kernels' time, not the
    launch's. The model's training mode is restored; no random number is drawn, so a CPU
    run's results stay the same for a given seed.

    It is a measurement, not a property of the model: it depends on the device, the thread
    count (``threads``) and what else the machine runs. On this project's 2-core machine, ten
    runs of one configuration (idle, and beside two busy processes) gave 0.051 to 0.076 ms for
    the default MLP and 1.24 to 1.48 ms for a CNN of width 32: the median drops preempted
    passes, but not the drift between runs. Compare trials that ran on the same kind of node
    with the same ``threads`` and ``device``, and read differences under about a third as
    noise.
    """
    was_training = model.training
    model.eval()
    cuda = batch.device.type == "cuda"
    times: list[float] = []
    try:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            for _ in range(warmup):
                model(batch)
            for _ in range(repeats):
                if cuda:
                    torch.cuda.synchronize(batch.device)
                started = clock()
                model(batch)
                if cuda:
                    torch.cuda.synchronize(batch.device)
                times.append(clock() - started)
    finally:
        model.train(was_training)
    return statistics.median(times) * 1000.0


def _fits_on_device(dataset: data.Dataset, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    size = dataset.x_train.nbytes + dataset.x_val.nbytes
    return size < free // 4


def _to(array: Any, device: torch.device, resident: bool) -> torch.Tensor:
    """A host array as a tensor: on the device when resident, else pinned host memory."""
    tensor = torch.from_numpy(array)
    if device.type != "cuda":
        return tensor
    tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True) if resident else tensor


def _check_fit(params: Mapping[str, Any], dataset: data.Dataset) -> None:
    if params["model"] == "cnn" and not dataset.is_image:
        raise data.DataError(
            f"model=cnn needs image data, but data={dataset.source!r} holds flat features of "
            f"shape {dataset.sample_shape}; use model=mlp or give x as (N, H, W) / (N, C, H, W)"
        )
    if not dataset.is_image and not augment.is_identity(
        float(params["rotation"]), bool(params["hflip"]), float(params["shift"])
    ):
        raise data.DataError(
            f"rotation, hflip and shift need image data, but data={dataset.source!r} holds "
            f"flat features; set them to 0/false"
        )


def _log(message: str) -> None:
    # stdout belongs to the SDK's JSON lines outside a pod; people read stderr.
    print(message, file=sys.stderr, flush=True)


def _summed(group: Group | None, *values: torch.Tensor) -> list[float]:
    """``values`` added up across the workers (as they are, for one worker)."""
    if group is None:
        return [float(v.item()) for v in values]
    import torch.distributed as dist

    stacked = torch.stack([v.double() for v in values])
    dist.all_reduce(stacked)
    return [float(v) for v in stacked.tolist()]


def run(params: Mapping[str, Any], *, report: Reporter | None = None,
        log: Callable[[str], None] = _log, group: Group | None = None) -> list[EpochResult]:
    """Train with ``params``, report each epoch, and return the per-epoch results. With a
    ``group`` (``distributed``), train data-parallel as one of its workers; worker 0 reports."""
    if report is None:
        from kubetune.sdk import report as sdk_report

        report = sdk_report
    try:
        return _run(params, report, log, group)
    finally:
        if group is not None:
            group.leave()


def _run(params: Mapping[str, Any], report: Reporter, log: Callable[[str], None],
         group: Group | None) -> list[EpochResult]:
    dataset = data.load_dataset(
        str(params["data"]), val_fraction=float(params["val_fraction"]),
        normalize=str(params["normalize"]), image_size=int(params["image_size"]),
    )
    _check_fit(params, dataset)
    device = configure(params)
    cuda = device.type == "cuda"
    backend = None if group is None else group.join(cuda)
    resident = _fits_on_device(dataset, device)
    x_train = _to(dataset.x_train, device, resident)
    y_train = _to(dataset.y_train, device, resident)
    x_val = _to(dataset.x_val, device, resident)
    y_val = _to(dataset.y_val, device, resident)
    shift = torch.from_numpy(dataset.shift).to(device)
    scale = torch.from_numpy(dataset.scale).to(device)

    model = models.build_model(params, dataset.sample_shape, dataset.n_classes).to(device)
    trained: nn.Module = model
    if group is not None:
        # Gradients averaged across the workers after every backward pass.
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index or 0] if cuda else None)
    optimizer = make_optimizer(params, model)
    batch_size, epochs = int(params["batch_size"]), int(params["epochs"])
    n_train = len(dataset.y_train)
    workers = 1 if group is None else group.size
    # A step takes batch_size examples, split between the workers (each gets at least one).
    step_size = max(batch_size, workers)
    steps_per_epoch = math.ceil(n_train / step_size)
    # Every worker must draw the same order: a generator of its own, apart from augmentation.
    order_rng = None if group is None else torch.Generator().manual_seed(int(params["seed"]))
    scheduler = make_schedule(optimizer, str(params["lr_schedule"]), steps_per_epoch * epochs)
    params_count = models.count_parameters(model)

    def batch(x: torch.Tensor, y: torch.Tensor,
              idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = x[idx], y[idx]
        if cuda and not resident:
            xb = xb.pin_memory().to(device, non_blocking=True)
            yb = yb.pin_memory().to(device, non_blocking=True)
        return xb, yb

    def autocast() -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)

    fixed, _ = batch(x_val, y_val, slice(0, LATENCY_BATCH))
    latency_ms = inference_latency_ms(model, (fixed - shift) / scale)
    who = "" if group is None else f"worker {group.rank} of {group.size} ({backend}): "
    log(
        f"kubetune-trainer: {who}{params['model']} with {params_count} weights on "
        f"{device} ({'bf16 autocast' if cuda else f'{torch.get_num_threads()} threads'}); "
        f"data={dataset.source} train={n_train} val={len(dataset.y_val)} "
        f"classes={dataset.n_classes}; inference {latency_ms:.3f} ms per batch of "
        f"{len(fixed)} (median of {LATENCY_REPEATS} passes)"
    )

    results: list[EpochResult] = []
    n_val = len(dataset.y_val)
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        trained.train()
        if order_rng is None:
            order = torch.randperm(n_train, device=x_train.device)
        else:
            order = torch.randperm(n_train, generator=order_rng).to(x_train.device)
        total = torch.zeros((), device=device)
        seen = torch.zeros((), device=device)
        for start in range(0, n_train, step_size):
            idx = order[start:start + step_size]
            if group is not None:
                if len(idx) < group.size:
                    break  # too few left for every worker to take one: the epoch ends
                idx = torch.tensor_split(idx, group.size)[group.rank]
            xb, yb = batch(x_train, y_train, idx)
            xb = augment.augment(xb, rotation=float(params["rotation"]),
                                 hflip=bool(params["hflip"]), shift=float(params["shift"]))
            xb = (xb - shift) / scale
            with autocast():
                loss = F.cross_entropy(trained(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach().float() * len(yb)
            seen += len(yb)
        train_sum, train_seen = _summed(group, total, seen)
        train_loss = train_sum / train_seen

        model.eval()
        val_total = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        eval_batch = max(batch_size, 1024)
        # Each worker judges its share of the validation examples; the sums are the same.
        first, stride = (0, 1) if group is None else (group.rank, group.size)
        with torch.no_grad():
            for start in range(first * eval_batch, n_val, eval_batch * stride):
                xb, yb = batch(x_val, y_val, slice(start, start + eval_batch))
                with autocast():
                    logits = model((xb - shift) / scale)
                val_total += F.cross_entropy(logits.float(), yb, reduction="sum")
                correct += (logits.argmax(dim=1) == yb).sum()
        val_sum, val_correct = _summed(group, val_total, correct)
        val_loss = val_sum / n_val
        val_accuracy = val_correct / n_val
        seconds = time.perf_counter() - started

        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise DivergedError(
                f"training diverged in epoch {epoch}: train_loss={train_loss}, "
                f"val_loss={val_loss} with lr={params['lr']} and optimizer="
                f"{params['optimizer']}; lower lr (or, with sgd, momentum)"
            )
        result = EpochResult(epoch, train_loss, val_loss, val_accuracy, seconds,
                             n_train / seconds if seconds > 0 else float("inf"),
                             params_count, latency_ms)
        results.append(result)
        if group is None or group.leader:
            report(step=epoch, **result.metrics())
        log(
            f"{who}epoch {epoch}/{epochs} train_loss={train_loss:.4f} val_loss={val_loss:.4f} "
            f"val_accuracy={val_accuracy:.4f} ({seconds:.3f} s, "
            f"{result.samples_per_second:.0f} samples/s)"
        )
    last = results[-1]
    if group is None or group.leader:
        report(step=last.epoch, final=True, **last.metrics())
    return results
