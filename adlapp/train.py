"""The training engine: one plain loop per (config, seed). It never prints; it reports through callbacks.

`train(cfg, seed)` seeds itself, moves the whole data set to the device once (no DataLoader or per-item work:
the data are small tensors), and per epoch measures training loss, validation loss and validation
accuracy (classification) or validation F1 and pixel accuracy (segmentation). The test split is scored at
`cfg.test_epochs` so the course's 200/400/1000-epoch budgets share one 1000-epoch run.

Both experiments overfit (validation loss rises several-fold after its minimum), so a budget's last epoch is
not its best. The trainer therefore also keeps, in memory, a copy of the weights (buffers included: BatchNorm's
running statistics) at the epoch with the lowest validation loss so far (ties: the earlier epoch), and at each
test epoch E scores them on the test split as extra test rows `best_acc`, `best_loss` (classification) or
`best_pixel_acc`, `best_f1`, `best_loss` (segmentation), plus `best_epoch`, the epoch (<= E) whose weights
were scored. Only the validation split chooses the epoch: the test split never does.

Checkpoints hold only tensors and plain numbers (`torch.save` of state dicts) and are read back with
`weights_only=True`, so resuming never unpickles arbitrary objects. Model, optimiser, the shuffling
generator and the best-validation weights are restored, so a resumed CPU run (same thread count) ends with
the same metrics, best_* rows included, as an uninterrupted one. The last epoch is always checkpointed, so a
finished run can be continued for more epochs (as a new run, adlapp.store.RunStore.continue_run): the learning
rate is constant and the batch order comes from the saved generator, so that continuation equals a run asked
for that many epochs from the start. By default a checkpoint is written whenever
the time since the last one is at least `_CHECKPOINT_COST_RATIO` times what writing one costs (every epoch
for the course CNN, every few epochs for the small U-Net), so checkpointing costs about 2 % and a crash loses
at most about a second of training.
The loop never reads a number back to the host per batch: training sums its loss on the device and checks it
once per epoch, evaluation once per split (GPU-ready; on CPU the numbers are those of a per-batch loop).
At each test epoch the current weights also go to `on_weights` (the runner keeps them as safetensors files,
see adlapp.weights), before that epoch's checkpoint and report.
An epoch's checkpoint is written *before* its metrics are reported: a crash between the two leaves a
checkpoint that is ahead of the store, never behind it, and the resumed run replays the missing epochs
from the checkpoint's history instead of training them again.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from adlapp.config import EXPERIMENT_INFO, RunConfig
from adlapp.data import ClassificationData, SegmentationData, load_data
from adlapp.models import build_model

__all__ = ["train", "RunResult", "EpochReport", "resolve_device", "device_name", "evaluate", "eval_batch_size",
           "checkpoint_state"]

_CHECKPOINT = "last.pt"        # read without torch as adlapp.store.CHECKPOINT_FILE and adlapp.planning.CHECKPOINT_FILE
_CHECKPOINT_COST_RATIO = 50     # adaptive checkpoints: at most ~1/50 of the training time goes to writing them


@dataclass
class EpochReport:
    epoch: int                                   # 1-based
    epochs: int
    metrics: dict[str, float]                    # train_loss, val_loss, val_acc | val_f1, val_pixel_acc, seconds
    tests: dict[str, float] | None = None        # test metrics (and best_* ones) when this is a test epoch
    replayed: bool = False                       # re-sent from a checkpoint's history on resume, not retrained


@dataclass
class RunResult:
    status: str                                  # done | diverged | cancelled
    seed: int
    device: str
    epochs_done: int
    history: list[dict[str, float]] = field(default_factory=list)   # one dict per epoch, with "epoch"
    tests: dict[int, dict[str, float]] = field(default_factory=dict)   # incl. best_* rows, see _BestWeights
    diverged_epoch: int | None = None
    seconds: float = 0.0
    resumed_from: int = 0                        # epoch of the checkpoint this run resumed from (0: fresh)
    checkpoint_threads: int | None = None        # torch CPU threads recorded in that checkpoint


def resolve_device(device: str = "auto") -> torch.device:
    """auto: CUDA if present, else Apple MPS, else CPU. A forced device that is missing is an error."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available on this machine")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device='mps': Apple MPS is not available on this machine")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise ValueError(f"device={device!r}: must be auto, cpu, cuda or mps")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _engine_input(cfg: RunConfig, x: torch.Tensor) -> torch.Tensor:
    """A batch as the engine wants it: NHWC in memory with `channels_last` (the model's weights are too)."""
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x


def _autocast(cfg: RunConfig, device: torch.device):
    """bf16 autocast of the forward pass and loss with `precision="bf16"`: the weights, their gradients and the
    optimiser stay fp32; the losses autocast computes in fp32 (cross-entropy, BCE with logits) stay fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def _loss(cfg: RunConfig, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if cfg.experiment == "cnn":
        return F.cross_entropy(logits, y)
    return F.binary_cross_entropy_with_logits(logits, y)


# Evaluation batch: 256 on CPU, where the float sum of batch losses (and so every stored loss) depends on how a
# split is cut into batches, and the recorded CPU studies were made at 256. On an accelerator, where per-batch
# overhead dominates, up to 1024 images a batch (a course split in one or two), capped at 2**24 input values so
# that large images (a 512x512 split: 21 a batch) keep the activations to a few GB.
_EVAL_BATCH_CPU = 256
_EVAL_BATCH_ACCELERATOR = 1024
_EVAL_VALUES_ACCELERATOR = 1 << 24


def eval_batch_size(x: torch.Tensor) -> int:
    """The evaluation batch for the split `x`, by its device and image size (see above)."""
    if x.device.type == "cpu":
        return _EVAL_BATCH_CPU
    per_image = max(1, x[0].numel()) if len(x) else 1
    return max(1, min(_EVAL_BATCH_ACCELERATOR, _EVAL_VALUES_ACCELERATOR // per_image))


@torch.inference_mode()
def evaluate(model: nn.Module, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None
             ) -> dict[str, float]:
    """Loss and accuracy (classification) or loss, F1 and pixel accuracy (segmentation) over a whole split.

    F1 is computed from the split's total true/false positives (a mask is foreground where the logit > 0),
    so a few almost empty images cannot dominate it. `batch_size` None: `eval_batch_size(x)`.

    The sums stay on the device and are read once per split: the loss as float64, adding
    `batch loss (float32, widened exactly) * batch length` batch by batch (the same additions, in the same
    order, as a Python float sum of `loss.item() * len(xb)`, so the numbers are those of a per-batch loop); the
    counts as int64, exact in the one float64 transfer up to 2**53 pixels.
    """
    was_training = model.training
    model.eval()
    batch_size = batch_size or eval_batch_size(x)
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    counts = torch.zeros(4, dtype=torch.int64, device=x.device)      # correct, tp, fp, fn
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        with _autocast(cfg, x.device):
            logits = model(_engine_input(cfg, xb))
            batch_loss = _loss(cfg, logits, yb)
        total_loss += batch_loss.double() * len(xb)
        if cfg.experiment == "cnn":
            counts[0] += (logits.argmax(1) == yb).sum()
        else:
            pred, truth = logits > 0, yb > 0.5
            counts += torch.stack([(pred == truth).sum(), (pred & truth).sum(), (pred & ~truth).sum(),
                                   (~pred & truth).sum()])
    model.train(was_training)
    loss_sum, correct, tp, fp, fn = torch.cat([total_loss.reshape(1), counts.double()]).tolist()
    correct, tp, fp, fn = int(correct), int(tp), int(fp), int(fn)
    n = len(x)
    if cfg.experiment == "cnn":
        return {"loss": loss_sum / n, "acc": correct / n}
    pixels = y.numel()
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
    return {"loss": loss_sum / n, "pixel_acc": correct / pixels, "f1": f1}


def _make_optimizer(cfg: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "adam":
        return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def checkpoint_state(checkpoint_dir: str | Path) -> dict | None:
    """Epoch, thread count and device (None in checkpoints written before it was recorded) of the checkpoint
    in `checkpoint_dir` (None when there is none), read without unpickling; lets a caller decide how to
    resume before `train` restores it."""
    path = Path(checkpoint_dir) / _CHECKPOINT
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {"epoch": int(state["epoch"]), "threads": state.get("threads"), "device": state.get("device")}


class _Checkpoints:
    """Where and when a run's checkpoint is written, and how it is read back (tensors only).

    every=None: adaptively, whenever the time since the last write is at least _CHECKPOINT_COST_RATIO
    times what the last write cost; every=N: each N epochs; every=0: only when the run is stopped. `train`
    also writes one at the last epoch, whatever `every` is."""

    def __init__(self, folder: str | Path | None, every: int | None) -> None:
        self.path = Path(folder) / _CHECKPOINT if folder else None
        self.every = every
        self.last_at, self.last_cost = time.perf_counter(), 0.0

    def due(self, epoch: int) -> bool:
        if self.every is None:
            return time.perf_counter() - self.last_at >= _CHECKPOINT_COST_RATIO * self.last_cost
        return self.every > 0 and epoch % self.every == 0

    def save(self, state: dict) -> None:
        if self.path is None:
            return
        t0 = time.perf_counter()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.path)                            # atomic: a crash never leaves half a checkpoint
        self.last_at = time.perf_counter()
        self.last_cost = self.last_at - t0

    def load(self, device: torch.device) -> dict | None:
        if self.path is None or not self.path.exists():
            return None
        return torch.load(self.path, map_location=device, weights_only=True)


class _BestWeights:
    """The weights at the lowest validation loss so far (ties: the earlier epoch), scored on demand.

    `state` is a cloned state_dict (parameters and buffers), replaced only when the validation loss improves;
    a NaN or infinite validation loss never improves. The saved weights are scored by a second module,
    deep-copied from the training model the first time it is needed (a copy draws no random numbers, so the
    training stream is untouched) and reloaded for each score, so the training model is never disturbed.
    """

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None
        self.val_loss = math.inf
        self.epoch = 0                                    # 0: no epoch chosen yet
        self._scorer: nn.Module | None = None

    def update(self, model: nn.Module, epoch: int, val_loss: float) -> None:
        if val_loss < self.val_loss:
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.val_loss, self.epoch = val_loss, epoch

    def tests(self, model: nn.Module, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor, epoch: int,
              current: dict[str, float]) -> dict[str, float]:
        """best_* rows at test epoch `epoch`; `current` are that epoch's own test scores (reused when the
        current epoch is the best one). {} when the best epoch's weights are not known (see `restore`)."""
        if self.state is None:
            return {}
        if self.epoch == epoch:
            scores = current
        else:
            if self._scorer is None:
                self._scorer = copy.deepcopy(model)
            self._scorer.load_state_dict(self.state)
            scores = evaluate(self._scorer, cfg, x, y)
        return {**{"best_" + k: v for k, v in scores.items()}, "best_epoch": float(self.epoch)}

    def checkpoint(self) -> dict:
        """Tensors and plain numbers only (the checkpoint is read with weights_only=True)."""
        return {"best_model": self.state, "best_val_loss": self.val_loss, "best_epoch": self.epoch}

    def restore(self, state: dict, model: nn.Module, history: list[dict[str, float]]) -> None:
        """Resume from a checkpoint. One written before best tracking existed has no best weights: the best
        validation loss and its epoch come from its history, and when that epoch is the checkpoint's own the
        restored model is its weights. Otherwise those weights are lost: test epochs whose best epoch lies
        before the checkpoint get no best_* rows, until a later epoch beats that loss and tracking is exact
        again (never a wrong row, only missing ones)."""
        if "best_epoch" in state:
            self.state = state["best_model"]
            self.val_loss, self.epoch = float(state["best_val_loss"]), int(state["best_epoch"])
            return
        for h in history:
            val_loss = h.get("val_loss", math.nan)
            if val_loss < self.val_loss:
                self.val_loss, self.epoch = val_loss, int(h["epoch"])
        if self.epoch and self.epoch == int(state["epoch"]):
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def _build(cfg: RunConfig, seed: int, dev: torch.device, data: ClassificationData | SegmentationData
           ) -> tuple[nn.Module, torch.optim.Optimizer, torch.Generator]:
    """Model (initialised from `seed` alone), optimiser and the generator of the batch order."""
    torch.manual_seed(seed)
    if cfg.experiment == "cnn":
        model = build_model(cfg, num_classes=data.num_classes)
    else:
        model = build_model(cfg, in_channels=data.train_x.shape[1])
    model.to(dev)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    shuffle = torch.Generator().manual_seed(seed)         # batch order: its own stream, saved in checkpoints
    return model, _make_optimizer(cfg, model), shuffle


def _train_one_epoch(cfg: RunConfig, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                     y: torch.Tensor, order: torch.Tensor) -> float:
    """Mean training loss over one pass in `order`; NaN when a batch loss was not finite (diverged).

    Nothing is read back to the host per batch (a GPU would wait for each step): the loss sum stays on the
    device and is read, and checked, once per epoch. It is a float64 sum of `batch loss * batch length` in
    batch order, the same additions as the Python float sum of `loss.item() * len(idx)` it replaced, so the
    CPU numbers are unchanged. A non-finite batch loss makes the sum non-finite (inf and NaN propagate), so
    divergence is still caught at its epoch; the batches after it step on broken weights, which changes
    nothing recorded, as the run ends there as diverged."""
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    seen = 0
    for i in range(0, len(x), cfg.batch_size):
        idx = order[i:i + cfg.batch_size]
        with _autocast(cfg, x.device):
            loss = _loss(cfg, model(_engine_input(cfg, x[idx])), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach().double() * len(idx)
        seen += len(idx)
    total = loss_sum.item()
    return total / seen if math.isfinite(total) else math.nan


def train(cfg: RunConfig, seed: int, on_epoch: Callable[[EpochReport], None] | None = None,
          device: str = "auto", checkpoint_dir: str | Path | None = None,
          should_stop: Callable[[], bool] | None = None, checkpoint_every: int | None = None,
          on_weights: Callable[[int, dict[str, torch.Tensor]], None] | None = None) -> RunResult:
    """Train `cfg` with `seed` and return its per-epoch history and test metrics.

    With `checkpoint_dir`, an existing checkpoint there is resumed from (its history is replayed through
    `on_epoch` with `replayed=True`), and checkpoints are written every `checkpoint_every` epochs (None:
    adaptively, see the module docstring; 0: only when stopped). `should_stop` is asked after every epoch;
    when it returns True the run checkpoints and returns with status "cancelled". The last epoch is always
    checkpointed (with a `checkpoint_dir`). A non-finite training
    loss ends the run with status "diverged" and `diverged_epoch` set (no test rows at that epoch, best_*
    ones included).

    Each test epoch's rows hold the current weights' scores (acc, loss / pixel_acc, f1, loss) and those of
    the weights with the lowest validation loss up to that epoch (best_acc, ..., best_epoch; see `_BestWeights`).
    `on_weights(E, state_dict)` is called at each test epoch E with the weights those scores came from, after
    they are computed and before the epoch's checkpoint and report (a crash never leaves a report without them).
    """
    started = time.perf_counter()
    dev = resolve_device(device)
    data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    model, optimizer, shuffle = _build(cfg, seed, dev, data)
    tx, ty = data.train_x.to(dev), data.train_y.to(dev)
    vx, vy = data.val_x.to(dev), data.val_y.to(dev)
    ex, ey = data.test_x.to(dev), data.test_y.to(dev)
    result = RunResult(status="done", seed=seed, device=device_name(dev), epochs_done=0)
    best = _BestWeights()

    checkpoints = _Checkpoints(checkpoint_dir, checkpoint_every)
    state = checkpoints.load(dev)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        shuffle.set_state(state["shuffle"])
        torch.set_rng_state(state["torch_rng"])
        result.history = [dict(h) for h in state["history"]]
        result.tests = {int(k): dict(v) for k, v in state["tests"].items()}
        result.epochs_done = result.resumed_from = int(state["epoch"])
        result.checkpoint_threads = state.get("threads")
        best.restore(state, model, result.history)
        for h in result.history if on_epoch else ():   # the store may lag the checkpoint: resend its epochs
            ep = int(h["epoch"])
            on_epoch(EpochReport(ep, cfg.epochs, {k: v for k, v in h.items() if k != "epoch"},
                                 result.tests.get(ep), replayed=True))

    def snapshot(epoch: int) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "shuffle": shuffle.get_state(),
                "torch_rng": torch.get_rng_state(), "epoch": epoch, "threads": torch.get_num_threads(),
                "device": result.device,
                "history": result.history, "tests": {str(k): v for k, v in result.tests.items()},
                **best.checkpoint()}

    model.train()
    for epoch in range(result.epochs_done + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(tx), generator=shuffle).to(dev)
        train_loss = _train_one_epoch(cfg, model, optimizer, tx, ty, order)
        if math.isnan(train_loss):
            metrics = {"train_loss": math.nan, "seconds": time.perf_counter() - t0}
            result.history.append({"epoch": epoch, **metrics})
            result.status, result.diverged_epoch, result.epochs_done = "diverged", epoch, epoch
            if on_epoch:
                on_epoch(EpochReport(epoch, cfg.epochs, metrics))
            break
        metrics = {"train_loss": train_loss, **{"val_" + k: v for k, v in evaluate(model, cfg, vx, vy).items()}}
        best.update(model, epoch, metrics["val_loss"])
        tests = None
        if epoch in cfg.test_epochs:
            tests = evaluate(model, cfg, ex, ey)
            tests = result.tests[epoch] = {**tests, **best.tests(model, cfg, ex, ey, epoch, tests)}
            if on_weights:
                on_weights(epoch, model.state_dict())
        metrics["seconds"] = time.perf_counter() - t0
        result.history.append({"epoch": epoch, **metrics})
        result.epochs_done = epoch
        last = epoch == cfg.epochs
        stop = not last and should_stop is not None and should_stop()
        # The last epoch is always checkpointed: a done run keeps it, so it can be continued for more epochs
        # (RunStore.continue_run) exactly as if it had been asked for that many from the start.
        if last or stop or checkpoints.due(epoch):
            checkpoints.save(snapshot(epoch))   # before the report: never behind the store
        if on_epoch:
            on_epoch(EpochReport(epoch, cfg.epochs, metrics, tests))
        if stop:
            result.status = "cancelled"
            break
    result.seconds = time.perf_counter() - started
    return result
