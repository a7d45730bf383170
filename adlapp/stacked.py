"""Several seeds of one variant trained as one stacked model (`torch.func`), behind a flag: a CUDA feature.

`train_stacked(cfg, seeds)` trains every seed of `cfg` in lockstep: the seeds' models are built exactly as
`adlapp.train.train` builds them (`adlapp.train._build`: `torch.manual_seed(seed)` before the model, a batch-order
generator of its own seeded with `seed`), their parameters and buffers are stacked along a new leading seed
dimension (`torch.func.stack_module_state`), and each training step is one `torch.func.functional_call` under
`torch.vmap` over that dimension: per seed its own batch (its own order, gathered into one (S, B, ...) tensor),
its own weights, its own BatchNorm statistics. On a GPU the S small models become one wide one (vmap turns each
convolution into a grouped convolution and each matmul into a batched one), so S seeds cost little more than one
where a single course-sized model leaves the GPU mostly idle. On a CPU it gains nothing and is usually slower
than S separate runs: it is meant for CUDA (`python -m adlapp bench --stacked` measures it there).

What it returns: one `adlapp.train.RunResult` per seed, the same as `train(cfg, seed, device=device)` (no
checkpoint folder, no callbacks) within the tolerance below: the per-epoch history (train_loss, val_loss and
val_acc | val_f1 and val_pixel_acc; `seconds` is the wall time of the whole stacked epoch, all seeds), the test
rows at `cfg.test_epochs`, best-validation `best_*` rows included (kept per seed by `adlapp.train._BestWeights`,
as train() keeps them), and diverged runs. Validation and test metrics are computed by `adlapp.train.evaluate`
itself on each seed's own (unstacked) module, loaded with that seed's slice of the stacked weights, so they are
defined exactly as in train(). Not supported: checkpoints and resuming, `should_stop`, `on_epoch` reports.

BatchNorm: the running mean/var (and num_batches_tracked) are stacked buffers passed to vmap with in_dims=0, so
BatchNorm in training mode updates each seed's slice in place from that seed's batch alone, as separate training
does; evaluation (`model.eval()` inside `evaluate`) then uses each seed's own running statistics.

Divergence: a seed whose epoch training loss is not finite is reported as train() reports it (status
"diverged", `diverged_epoch`, a last history row with train_loss NaN, no test rows at that epoch) and is then
dropped from the stack (its parameters, buffers and optimiser state are removed), so the other seeds go on
exactly as before. Within the epoch in which it diverges, its NaNs stay in its own slice: every vmapped kernel
computes the seeds separately and the optimiser update is elementwise.

Tolerance: the numbers are not bit-identical to separate runs, because vmap's batched kernels (grouped
convolutions, batched matmuls, their backward passes) add up in a different order. On CPU, tiny sizes, a few
epochs (tests/test_stacked.py), every metric agrees with train() to rtol 1e-4 / atol 1e-5 and the final weights
and BatchNorm statistics to rtol 1e-4 / atol 1e-5; the measured gaps are far smaller (about 1e-6 or less, see the
test module). Over long runs the gaps can grow as any float rounding difference does in training (chaotic
dynamics), so a 1000-epoch stacked run matches a separate one statistically, not digit for digit.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from adlapp.config import EXPERIMENT_INFO, RunConfig
from adlapp.data import load_data
from adlapp.train import RunResult, _BestWeights, _build, _loss, device_name, evaluate, resolve_device

__all__ = ["train_stacked", "STACKED_RTOL", "STACKED_ATOL"]

STACKED_RTOL = 1e-4                 # the tolerance promised against adlapp.train.train (see the module docstring)
STACKED_ATOL = 1e-5


def _make_optimizer(cfg: RunConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """One optimiser over the stacked (S, ...) parameters. Adam (moments, bias correction, weight decay) and SGD
    with momentum update every element from that element's own gradient and state alone, and all seeds take
    their steps together (one shared step count, as each separate optimiser's would be), so this is
    mathematically the same as S separate optimisers, one per seed, as adlapp.train builds them."""
    o = cfg.optim
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


class _Stack:
    """The stacked weights of the seeds still training (rows in `seeds` order), their optimiser, and a weightless
    copy of the model (on the meta device) that `functional_call` runs with them."""

    def __init__(self, cfg: RunConfig, models: list[nn.Module]) -> None:
        self.cfg = cfg
        self.params, self.buffers = stack_module_state(models)     # params: leaves that require grad
        self.optimizer = _make_optimizer(cfg, list(self.params.values()))
        self.base = copy.deepcopy(models[0]).to("meta")
        self.base.train()

        def one_seed_loss(params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return _loss(cfg, functional_call(self.base, (params, buffers), (x,)), y)

        self._losses = torch.vmap(one_seed_loss, in_dims=(0, 0, 0, 0))

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One training step of every seed on its own batch, x (S, B, ...), y (S, B, ...); the (S,) losses.
        The gradient of the sum of the losses with respect to seed s's weights is that of seed s's loss alone."""
        losses = self._losses(self.params, self.buffers, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach()

    def state_of(self, row: int) -> dict[str, torch.Tensor]:
        """Seed `row`'s weights and buffers, as state_dict entries (views into the stack)."""
        return {**{k: v.detach()[row] for k, v in self.params.items()}, **{k: v[row] for k, v in self.buffers.items()}}

    def keep(self, rows: list[int]) -> None:
        """Drop every seed but `rows` (diverged ones): their weights, buffers and optimiser state."""
        index = torch.tensor(rows, device=next(iter(self.params.values())).device)
        old_params = list(self.params.values())
        self.params = {k: v.detach().index_select(0, index).clone().requires_grad_() for k, v in self.params.items()}
        self.buffers = {k: v.index_select(0, index).clone() for k, v in self.buffers.items()}
        old_state = self.optimizer.state
        self.optimizer = _make_optimizer(self.cfg, list(self.params.values()))
        for old, new in zip(old_params, self.params.values(), strict=True):
            if old in old_state:
                self.optimizer.state[new] = {
                    k: (t.index_select(0, index).clone() if torch.is_tensor(t) and t.shape == old.shape
                        else (t.clone() if torch.is_tensor(t) else t))
                    for k, t in old_state[old].items()}


def train_stacked(cfg: RunConfig, seeds: list[int] | tuple[int, ...], device: str = "auto",
                  on_weights: Callable[[int, int, dict[str, torch.Tensor]], None] | None = None) -> list[RunResult]:
    """Train `cfg` with every seed in `seeds` as one stacked model; one RunResult per seed, in `seeds` order.

    The results are those of `adlapp.train.train(cfg, seed, device=device)` for each seed, best_* rows and
    divergence included, within rtol 1e-4 / atol 1e-5 (see the module docstring: a CUDA feature, slower on CPU).
    `on_weights(seed, E, state_dict)` is called at each test epoch E of each seed still training, with the weights
    its test rows were scored with (as train()'s `on_weights(E, state_dict)`).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("train_stacked: no seeds")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"train_stacked: seeds {seeds} repeat a seed")
    if cfg.channels_last or cfg.precision != "fp32":
        raise ValueError("train_stacked: the stacked model trains fp32 with the default memory format only "
                         f"(asked: channels_last={cfg.channels_last}, precision={cfg.precision!r})")
    started = time.perf_counter()
    dev = resolve_device(device)
    data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    models, shuffles = [], []
    for seed in seeds:
        model, _, shuffle = _build(cfg, seed, dev, data)          # exactly train()'s model and batch order
        models.append(model)
        shuffles.append(shuffle)
    tx, ty = data.train_x.to(dev), data.train_y.to(dev)
    vx, vy = data.val_x.to(dev), data.val_y.to(dev)
    ex, ey = data.test_x.to(dev), data.test_y.to(dev)
    results = [RunResult(status="done", seed=seed, device=device_name(dev), epochs_done=0) for seed in seeds]
    bests = [_BestWeights() for _ in seeds]
    stack = _Stack(cfg, models)
    active = list(range(len(seeds)))                  # positions in `seeds` of the stack's rows, in row order
    n = len(tx)

    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        orders = torch.stack([torch.randperm(n, generator=shuffles[i]) for i in active]).to(dev)
        loss_sum = torch.zeros(len(active), dtype=torch.float64, device=dev)
        seen = 0
        for start in range(0, n, cfg.batch_size):
            idx = orders[:, start:start + cfg.batch_size]          # (S, B): each seed's own batch
            losses = stack.step(tx[idx], ty[idx])
            loss_sum += losses.double() * idx.shape[1]             # train.py's float64 sum, per seed
            seen += idx.shape[1]
        totals = loss_sum.tolist()
        keep_rows = []
        for row, i in enumerate(active):
            total = totals[row]
            result = results[i]
            if not math.isfinite(total):
                result.history.append({"epoch": epoch, "train_loss": math.nan})
                result.status, result.diverged_epoch, result.epochs_done = "diverged", epoch, epoch
                continue
            keep_rows.append(row)
            model = models[i]
            model.load_state_dict(stack.state_of(row))
            metrics = {"train_loss": total / seen,
                       **{"val_" + k: v for k, v in evaluate(model, cfg, vx, vy).items()}}
            bests[i].update(model, epoch, metrics["val_loss"])
            if epoch in cfg.test_epochs:
                tests = evaluate(model, cfg, ex, ey)
                result.tests[epoch] = {**tests, **bests[i].tests(model, cfg, ex, ey, epoch, tests)}
                if on_weights:
                    on_weights(seeds[i], epoch, model.state_dict())
            result.history.append({"epoch": epoch, **metrics})
            result.epochs_done = epoch
        seconds = time.perf_counter() - t0
        for i in active:
            results[i].history[-1]["seconds"] = seconds
        if len(keep_rows) < len(active):
            active = [active[row] for row in keep_rows]
            if not active:
                break
            stack.keep(keep_rows)
    elapsed = time.perf_counter() - started
    for result in results:
        result.seconds = elapsed
    return results
