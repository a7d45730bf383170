"""`python -m adlapp bench`: the training engine measured against the loop a course notebook writes.

Both loops train the same model, optimiser, learning rate, batch size, epochs and seeds on the same data and
device, in one process, alternating single epochs (notebook, adlapp, notebook, adlapp, ...; the next seed starts
with adlapp), so that a burst of load from elsewhere on the machine lands on both alike:

- notebook: a `torch.utils.data.Dataset` returning one (image, target) pair per item, a `DataLoader` that
  collates each batch on the CPU and moves it to the device, validation every epoch and the test split after
  the last one through `DataLoader`s, one seed after another;
- adlapp: `adlapp.train.train`, which moves each split to the device once and indexes batches there (it also
  keeps the best-validation weights, and scores them on the test split when they are not the last epoch's).

The notebook's sampler draws each epoch's order exactly as the engine does (one `randperm` per epoch from a
generator seeded with the run's seed; `shuffle=True` costs the same) and its evaluation loaders use the engine's
evaluation batch, so on CPU both loops take the very same steps: their final weights and test scores must be
identical, which the bench checks and prints. No shortcut can hide in either loop.

Printed: per seed and loop the median seconds per epoch (training pass + validation; every epoch but the last),
training images/s and the FLOP rate achieved (the torch FLOP counter's FLOPs of an epoch's training steps and
validation pass, per second); in the summary also its share of this machine's fp32 matmul rate (a large
`torch.mm`, median of several, before and after the runs), peak memory of one epoch of each loop measured in a
fresh process (CUDA: peak allocated; CPU: peak resident set growth), and the final test scores. The last line is
`speedup_vs_notebook=<median over the epoch pairs of notebook seconds / adlapp seconds>`, over every epoch but
the last: there both loops do the same work, while the last adds the test split, which the engine may score twice
(its best-validation weights too); the last epoch's seconds are printed apart.

`--profile N` also profiles one engine epoch (after the runs) and prints the N ops that took the most time.
`--stacked` (CUDA only; elsewhere it prints that it skipped) also times the seeds trained as one stacked model
(adlapp.stacked) against the engine's separate runs, printed just before the last line.
`--channels-last` and `--precision bf16` run the engine with those options (RunConfig.channels_last, .precision)
while the notebook loop stays the fp32 one: the ratio then measures the options too, and instead of "identical"
the bench prints how far each seed's final test scores moved (the accuracy check). The FLOP rate's share is
always of the fp32 matmul rate.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from adlapp.config import (
    EXPERIMENT_INFO,
    EXPERIMENTS,
    LIMITS,
    MAX_SEEDS,
    PRECISIONS,
    ConfigError,
    RunConfig,
    config_from_dict,
    config_to_dict,
    engine_label,
    variant,
    variant_label,
)

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

    from adlapp.data import ClassificationData, SegmentationData
    from adlapp.train import EpochReport

# torch is imported inside the functions that use it: adlapp.cli imports this module for every command, and the
# commands that only read results (runs, compare, export) must not pay seconds for a torch import.

__all__ = ["BenchError", "add_parser", "run", "LoopRun", "notebook_run", "engine_run", "bench_config",
           "flops_per_image", "matmul_gflops", "peak_memory", "profile_engine_epoch", "notebook_epochs",
           "interleaved", "SeedPair", "stacked_lines"]

_DEFAULT_VARIANT = {"cnn": "bn-adam", "unet": "normal"}   # the course's first variant of each
_EVAL_BATCH = 256                                      # adlapp.train.evaluate's batch; the notebook uses it too


class BenchError(ValueError):
    """A bad bench argument; the message names it."""


def add_parser(sub, summary: str) -> None:
    b = sub.add_parser("bench", help=summary,
                       description="Train the same runs with a notebook-style DataLoader loop and with adlapp's "
                                   "engine, interleaved in one process, and print images/s, GFLOP/s, its share "
                                   "of the matmul rate, peak memory, both final test scores and, last, "
                                   "speedup_vs_notebook=<median ratio>.")
    b.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    b.add_argument("--experiment", choices=EXPERIMENTS, default="cnn")
    b.add_argument("--variant", help="variant of the experiment (default: cnn bn-adam, unet normal)")
    b.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1, one run of each loop per seed (default 2)")
    b.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    b.add_argument("--threads", type=int, help="torch CPU threads (default: torch's default)")
    b.add_argument("--train-per-class", type=int, help="cards: training images per class (default 20: 1,060)")
    b.add_argument("--n-train", type=int, help="vessels: training images (default 48)")
    b.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also profile one engine epoch and print its N most expensive ops")
    b.add_argument("--stacked", action="store_true",
                   help="CUDA only: also train the seeds as one stacked model (adlapp.stacked) and compare its "
                        "time and final test scores with the engine's separate runs; skipped on other devices")
    b.add_argument("--channels-last", action="store_true",
                   help="the engine trains with channels-last (NHWC) memory format; the notebook loop stays as is")
    b.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="the engine's precision: fp32 (default) or bf16 autocast (the notebook loop stays fp32); "
                        "the final scores of both are printed side by side as the accuracy check")


# -- the two loops ------------------------------------------------------------------------------------------
@dataclass
class LoopRun:
    """One run of one loop: its final test scores and weights, and the wall seconds from start to return (under
    `interleaved` the engine's include the notebook epochs run between its own: compare per-epoch seconds)."""
    loop: str                                    # "notebook" | "adlapp"
    seed: int
    seconds: float
    tests: dict[str, float]                      # acc, loss (cnn) or pixel_acc, f1, loss (unet)
    weights: dict[str, torch.Tensor]


class PairDataset:
    """What a notebook writes: one (image, target) pair per index, collated into batches by the DataLoader (a map-style
    data set needs only these two methods; subclassing torch's Dataset would add nothing but an import)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class EngineOrder:
    """Shuffles like `shuffle=True` (one randperm per epoch) but from the engine's stream, so both loops see the
    same batches: RandomSampler would also draw the DataLoader's base seed and a spare randperm from it."""

    def __init__(self, n: int, seed: int) -> None:
        import torch

        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        import torch

        return iter(torch.randperm(self.n, generator=self.generator).tolist())


def _optimizer(cfg: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    import torch

    o = cfg.optim
    if o.name == "adam":
        return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def _criterion(cfg: RunConfig):
    import torch.nn.functional as F

    return F.cross_entropy if cfg.experiment == "cnn" else F.binary_cross_entropy_with_logits


def _notebook_evaluate(cfg: RunConfig, model: torch.nn.Module, loader: DataLoader, dev: torch.device
                       ) -> dict[str, float]:
    """The scores adlapp.train.evaluate computes, the notebook way: batches from a DataLoader, moved one by one."""
    import torch

    with torch.no_grad():
        return _scores(cfg, model, loader, dev)


def _scores(cfg: RunConfig, model: torch.nn.Module, loader: DataLoader, dev: torch.device) -> dict[str, float]:
    model.eval()
    criterion = _criterion(cfg)
    total_loss, n, correct, tp, fp, fn, pixels = 0.0, 0, 0, 0, 0, 0, 0
    for xb, yb in loader:
        xb, yb = xb.to(dev), yb.to(dev)
        logits = model(xb)
        total_loss += criterion(logits, yb).item() * len(xb)
        n += len(xb)
        if cfg.experiment == "cnn":
            correct += (logits.argmax(1) == yb).sum().item()
        else:
            pred, truth = logits > 0, yb > 0.5
            correct += (pred == truth).sum().item()
            tp += (pred & truth).sum().item()
            fp += (pred & ~truth).sum().item()
            fn += (~pred & truth).sum().item()
            pixels += yb.numel()
    model.train()
    if cfg.experiment == "cnn":
        return {"loss": total_loss / n, "acc": correct / n}
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
    return {"loss": total_loss / n, "pixel_acc": correct / pixels, "f1": f1}


def _model_for(cfg: RunConfig, data: ClassificationData | SegmentationData) -> torch.nn.Module:
    from adlapp.models import build_model

    if cfg.experiment == "cnn":
        return build_model(cfg, num_classes=data.num_classes)
    return build_model(cfg, in_channels=data.train_x.shape[1])


def notebook_epochs(cfg: RunConfig, seed: int, data: ClassificationData | SegmentationData, dev: torch.device):
    """The course notebook's loop as a generator: Dataset + DataLoader, per-batch copies to the device, validation
    each epoch, the test split after the last one. Yields each epoch's wall seconds (the last one's includes the
    test split, as the engine's does) and returns a `LoopRun` (its `seconds`: the model build and every epoch)."""
    import torch
    from torch.utils.data import DataLoader

    t0 = time.perf_counter()
    torch.manual_seed(seed)                               # the engine seeds the same way before building
    model = _model_for(cfg, data).to(dev)
    optimizer = _optimizer(cfg, model)
    criterion = _criterion(cfg)
    train_set = PairDataset(data.train_x, data.train_y)
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=EngineOrder(len(train_set), seed))
    val_loader = DataLoader(PairDataset(data.val_x, data.val_y), batch_size=_EVAL_BATCH)
    test_loader = DataLoader(PairDataset(data.test_x, data.test_y), batch_size=_EVAL_BATCH)
    model.train()
    tests: dict[str, float] = {}
    for epoch in range(1, cfg.epochs + 1):
        started = time.perf_counter()
        running = 0.0
        for xb, yb in train_loader:
            xb, yb = xb.to(dev), yb.to(dev)
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item() * len(xb)
        _notebook_evaluate(cfg, model, val_loader, dev)   # a notebook prints these; the bench only pays for them
        if epoch == cfg.epochs:
            tests = _notebook_evaluate(cfg, model, test_loader, dev)
        _sync(dev)
        yield time.perf_counter() - started
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return LoopRun("notebook", seed, time.perf_counter() - t0, tests, weights)


def notebook_run(cfg: RunConfig, seed: int, data: ClassificationData | SegmentationData, dev: torch.device
                 ) -> LoopRun:
    """`notebook_epochs` run to the end on its own."""
    epochs = notebook_epochs(cfg, seed, data, dev)
    while True:
        try:
            next(epochs)
        except StopIteration as done:
            return done.value


def engine_run(cfg: RunConfig, seed: int, dev: torch.device,
               between_epochs: Callable[[], None] | None = None) -> tuple[LoopRun, list[float]]:
    """adlapp's engine on the same run (no store, no checkpoints: `train` writes them only into a folder), and
    its epochs' own seconds as it records them. `between_epochs` runs after each epoch, outside those seconds."""
    from adlapp.train import train

    final: dict[str, torch.Tensor] = {}

    def keep(epoch: int, state: dict[str, torch.Tensor]) -> None:
        if epoch == cfg.epochs:
            final.update({k: v.detach().clone() for k, v in state.items()})

    def after(report: EpochReport) -> None:
        if between_epochs is not None:
            between_epochs()

    t0 = time.perf_counter()
    result = train(cfg, seed, device=str(dev), on_weights=keep, on_epoch=after)
    seconds = time.perf_counter() - t0
    if result.status != "done":
        raise BenchError(f"the adlapp run of seed {seed} ended {result.status} at epoch {result.epochs_done}")
    tests = {k: v for k, v in result.tests[cfg.epochs].items() if not k.startswith("best_")}
    return LoopRun("adlapp", seed, seconds, tests, final), [h["seconds"] for h in result.history]


@dataclass
class SeedPair:
    """Both loops on one seed, interleaved epoch by epoch: per-epoch seconds, in epoch order, and the runs."""
    notebook: LoopRun
    adlapp: LoopRun
    notebook_epochs: list[float]
    adlapp_epochs: list[float]


def interleaved(cfg: RunConfig, seed: int, data: ClassificationData | SegmentationData, dev: torch.device,
                notebook_first: bool, engine_cfg: RunConfig | None = None) -> SeedPair:
    """Train `seed` both ways, alternating single epochs (notebook, adlapp, notebook, ... or adlapp first), so a
    burst of load from elsewhere on the machine lands on both loops' epochs alike instead of on one whole run.
    `engine_cfg`: the engine's config when it differs from the notebook's in its engine options only."""
    engine_cfg = engine_cfg or cfg
    epochs = notebook_epochs(cfg, seed, data, dev)
    notebook_secs: list[float] = []
    finished: list[LoopRun] = []

    def one_notebook_epoch() -> None:
        try:
            notebook_secs.append(next(epochs))
        except StopIteration as done:
            finished.append(done.value)

    if notebook_first:
        one_notebook_epoch()
        engine, engine_secs = engine_run(engine_cfg, seed, dev, between_epochs=lambda: (
            one_notebook_epoch() if len(notebook_secs) < cfg.epochs else None))
    else:
        engine, engine_secs = engine_run(engine_cfg, seed, dev, between_epochs=one_notebook_epoch)
    while not finished:                                   # the generator returns its LoopRun after the last yield
        one_notebook_epoch()
    return SeedPair(finished[0], engine, notebook_secs, engine_secs)


# -- what the runs cost and what the machine can do ---------------------------------------------------------
def flops_per_image(cfg: RunConfig, data: ClassificationData | SegmentationData, dev: torch.device
                    ) -> tuple[float, float]:
    """(FLOPs of one training step per image: forward + backward, FLOPs of one forward pass per image), by
    torch's FLOP counter on one batch of the run's batch size (the optimiser step is not counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = _model_for(cfg, data).to(dev)
    n = min(cfg.batch_size, len(data.train_x))
    x, y = data.train_x[:n].to(dev), data.train_y[:n].to(dev)
    with FlopCounterMode(display=False) as counter:
        _criterion(cfg)(model(x), y).backward()
    train_flops = counter.get_total_flops() / n
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return train_flops, counter.get_total_flops() / n


def matmul_gflops(dev: torch.device, size: int | None = None, repeats: int = 5) -> float:
    """This device's fp32 matmul rate: median GFLOP/s of `repeats` timed `torch.mm` of two size x size matrices."""
    import torch

    size = size or (8192 if dev.type == "cuda" else 2048)
    a = torch.randn(size, size, device=dev)
    b = torch.randn(size, size, device=dev)
    rates = []
    for i in range(repeats + 2):                          # two warm-ups: thread pools, allocator, clocks
        _sync(dev)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(dev)
        if i >= 2:
            rates.append(2 * size ** 3 / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        import torch


        torch.cuda.synchronize(dev)


_MEMORY_PROBE = """
import json, sys
from adlapp.bench import _memory_probe
print(json.dumps(_memory_probe(json.loads(sys.argv[1]))))
"""


def peak_memory(loop: str, cfg: RunConfig, dev: torch.device, threads: int) -> tuple[float, str]:
    """(MiB, how it was measured) for one epoch of `loop`, in a fresh Python process of its own: in this one the
    allocator keeps memory freed by earlier runs resident and reuses it, so a peak here would only show growth
    beyond whatever ran before. CUDA: `max_memory_allocated`; CPU: peak resident set growth (ru_maxrss)."""
    one = replace(cfg, epochs=1)
    request = {"loop": loop, "config": config_to_dict(one), "device": str(dev), "threads": threads}
    done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, json.dumps(request)], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise BenchError(f"peak-memory probe of the {loop} loop failed: {done.stderr.strip()[-500:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["mib"], answer["how"]


def _memory_probe(request: dict) -> dict:
    """In the probe process: build the data, warm the kernels up on a few images, then reset the peak and run."""
    import torch

    from adlapp.data import load_data

    cfg, dev = config_from_dict(request["config"]), torch.device(request["device"])
    torch.set_num_threads(request["threads"])
    data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    flops_per_image(cfg, data, dev)                       # one step on the device: thread pools, kernels, context
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        start, how = torch.cuda.memory_allocated(dev), "CUDA max_memory_allocated growth"
    else:
        start, how = _reset_peak_rss_kib()
    if request["loop"] == "notebook":
        notebook_run(cfg, 0, data, dev)
    else:
        engine_run(cfg, 0, dev)
    if dev.type == "cuda":
        mib = (torch.cuda.max_memory_allocated(dev) - start) / 2 ** 20
    else:
        mib = max(0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024
    return {"mib": mib, "how": how}


def _reset_peak_rss_kib() -> tuple[float, str]:
    """(resident KiB now, how the peak is read). Linux resets the peak when 5 is written to /proc/self/clear_refs,
    so ru_maxrss afterwards is the peak from here on; elsewhere it is the process's peak so far."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]), "peak RSS growth over one epoch (ru_maxrss, peak reset first)"
    except OSError:
        pass
    return (float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
            "peak RSS growth over one epoch (ru_maxrss beyond the start-up peak)")


def profile_engine_epoch(cfg: RunConfig, dev: torch.device, rows: int) -> str:
    """torch.profiler's table of the `rows` ops with the most self time over one engine epoch (after a warm-up
    epoch), forward and backward ops alike."""
    from torch.profiler import ProfilerActivity, profile

    from adlapp.train import train

    one = replace(cfg, epochs=1, eval_at=())
    train(one, 0, device=str(dev))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=activities) as prof:
        train(one, 0, device=str(dev))
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


# -- the command --------------------------------------------------------------------------------------------
def bench_config(experiment: str, name: str | None, epochs: int, train_per_class: int | None = None,
                 n_train: int | None = None) -> RunConfig:
    """The variant's registry config at bench size: `epochs`, no extra test epochs, optional data sizes."""
    try:
        cfg = variant(f"{experiment}/{name or _DEFAULT_VARIANT[experiment]}")
        if cfg.experiment != experiment:
            raise BenchError(f"--variant {name!r}: not a {experiment} variant")
        data = cfg.data
        if train_per_class is not None:
            data = replace(data, train_per_class=train_per_class)
        if n_train is not None:
            data = replace(data, n_train=n_train)
        return replace(cfg, epochs=epochs, eval_at=(), data=data)
    except ConfigError as e:
        raise BenchError(str(e)) from None


def _check(args: argparse.Namespace) -> None:
    for name, value, top in (("--seeds", args.seeds, MAX_SEEDS), ("--epochs", args.epochs, LIMITS["epochs"]),
                             ("--threads", args.threads, LIMITS["threads"]),
                             ("--train-per-class", args.train_per_class, LIMITS["train_per_class"]),
                             ("--n-train", args.n_train, LIMITS["n_train"])):
        if value is not None and not 1 <= value <= top:
            raise BenchError(f"{name} {value}: must be a whole number from 1 to {top}")
    if args.epochs < 2:
        raise BenchError(f"--epochs {args.epochs}: must be at least 2 (the last epoch, which also scores the test "
                         "split, is timed apart from the others)")
    if args.profile < 0:
        raise BenchError(f"--profile {args.profile}: must be 0 (off) or a number of ops")
    if args.train_per_class is not None and args.experiment != "cnn":
        raise BenchError("--train-per-class: only for --experiment cnn (the cards data)")
    if args.n_train is not None and args.experiment != "unet":
        raise BenchError("--n-train: only for --experiment unet (the vessels data)")


def _score_names(cfg: RunConfig) -> tuple[str, ...]:
    return ("acc",) if cfg.experiment == "cnn" else ("pixel_acc", "f1")


def run(args: argparse.Namespace) -> int:
    _check(args)
    import torch

    from adlapp.data import DataError, load_data
    from adlapp.train import resolve_device

    cfg = bench_config(args.experiment, args.variant, args.epochs, args.train_per_class, args.n_train)
    engine_cfg = replace(cfg, channels_last=bool(getattr(args, "channels_last", False)),
                         precision=getattr(args, "precision", "fp32"))
    engine_options = engine_label(variant_label(engine_cfg))[1]       # "channels-last, bf16 autocast" or ""
    try:
        dev = resolve_device(args.device)
    except ValueError as e:
        raise BenchError(f"--device {args.device}: {e}") from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    except DataError as e:
        raise BenchError(str(e)) from None
    n_train, n_val, n_test = len(data.train_x), len(data.val_x), len(data.test_x)
    name = f"{cfg.experiment}/{args.variant or _DEFAULT_VARIANT[cfg.experiment]}"
    threads = f"{torch.get_num_threads()} threads" if dev.type == "cpu" else "GPU"
    print(f"bench: {name} on {dev} ({threads}); {cfg.data.name}: {n_train} train / {n_val} val / {n_test} test "
          f"images; batch {cfg.batch_size}; {cfg.epochs} epochs x seeds 0-{args.seeds - 1}; the two loops "
          "alternate epoch by epoch" + (f"; the engine with {engine_options}" if engine_options else ""), flush=True)

    train_flops, eval_flops = flops_per_image(cfg, data, dev)
    epoch_flops = train_flops * n_train + eval_flops * n_val           # one training pass + validation
    matmul = [matmul_gflops(dev)]
    # Untimed warm-up of both loops (thread pools, oneDNN kernels, the allocator), so the first timed epoch is
    # not the one that pays for them.
    warm = replace(cfg, epochs=1)
    notebook_run(warm, 0, data, dev)
    engine_run(replace(engine_cfg, epochs=1), 0, dev)

    scores = _score_names(cfg)
    print(f"{'seed':>4} {'loop':9} {'s/epoch':>8} {'img/s':>7} {'GFLOP/s':>8} "
          + " ".join(f"{'test_' + s:>14}" for s in scores) + "   (per seed: median over its epochs but the last)",
          flush=True)
    pairs: list[SeedPair] = []
    for seed in range(args.seeds):
        pair = interleaved(cfg, seed, data, dev, notebook_first=seed % 2 == 0, engine_cfg=engine_cfg)
        pairs.append(pair)
        for loop, secs, one in (("notebook", pair.notebook_epochs, pair.notebook),
                                ("adlapp", pair.adlapp_epochs, pair.adlapp)):
            med = statistics.median(secs[:-1])
            print(f"{seed:>4} {loop:9} {med:8.3f} {n_train / med:7.0f} {epoch_flops / med / 1e9:8.1f} "
                  + " ".join(f"{one.tests[s]:14.4f}" for s in scores), flush=True)
    matmul.append(matmul_gflops(dev))                    # once before, once after: the machine may have changed
    rate = statistics.median(matmul)
    memory = {loop: peak_memory(loop, cfg if loop == "notebook" else engine_cfg, dev, torch.get_num_threads())
              for loop in ("notebook", "adlapp")}

    print(f"FLOPs (torch FLOP counter): {train_flops / 1e6:.1f} MFLOP per training image (forward + backward), "
          f"{eval_flops / 1e6:.1f} MFLOP per validated image; {epoch_flops / 1e9:.2f} GFLOP per epoch")
    print(f"fp32 matmul rate on {dev}: {rate:.1f} GFLOP/s (torch.mm; before the runs {matmul[0]:.1f}, after "
          f"{matmul[1]:.1f})")
    print(f"peak memory: {memory['adlapp'][1]}, each loop in a fresh process")
    for loop in ("notebook", "adlapp"):
        secs = statistics.median(s for p in pairs for s in getattr(p, loop + "_epochs")[:-1])
        gflops = epoch_flops / secs / 1e9
        finals = [getattr(p, loop).tests for p in pairs]
        print(f"{loop:9} {n_train / secs:6.0f} images/s, {secs:.3f} s/epoch, {gflops:.1f} GFLOP/s = "
              f"{100 * gflops / rate:.0f} % of matmul, peak memory {memory[loop][0]:.1f} MiB, final test "
              + ", ".join(f"{s} {statistics.median(t[s] for t in finals):.4f}" for s in scores)
              + " (median over seeds)")
    last = {loop: statistics.median(getattr(p, loop + "_epochs")[-1] for p in pairs) for loop in ("notebook", "adlapp")}
    print(f"last epoch (adds the test split; adlapp also scores its best-validation weights there when they are an "
          f"earlier epoch's): notebook {last['notebook']:.3f} s, adlapp {last['adlapp']:.3f} s (median over seeds)")
    if engine_options:       # other arithmetic: the check is how far the scores moved, not equality
        moved = {s: [p.adlapp.tests[s] - p.notebook.tests[s] for p in pairs] for s in scores}
        print(f"accuracy check ({engine_options} vs the fp32 notebook loop, same seeds and batches): final test "
              + "; ".join(f"{s} adlapp - notebook per seed " + ", ".join(f"{d:+.4f}" for d in ds)
                          for s, ds in moved.items()))
    else:
        same_scores = all(p.notebook.tests == p.adlapp.tests for p in pairs)
        same_weights = all(_same_weights(p.notebook.weights, p.adlapp.weights) for p in pairs)
        print(f"same learning problem: final test scores identical: {_yes(same_scores)}; final weights identical: "
              f"{_yes(same_weights)}" + ("" if dev.type == "cpu" else " (GPU kernels need not be deterministic)"))
    if args.profile:
        print(f"profile of one adlapp epoch (top {args.profile} ops by self time):")
        print(profile_engine_epoch(engine_cfg, dev, args.profile))
    if getattr(args, "stacked", False):
        for line in stacked_lines(cfg, list(range(args.seeds)), dev):
            print(line, flush=True)
    # Epochs but the last: there both loops do identical work (train + validate); the last adds unequal test work.
    ratios = [a / b for p in pairs for a, b in zip(p.notebook_epochs[:-1], p.adlapp_epochs[:-1], strict=True)]
    print(f"speedup_vs_notebook={statistics.median(ratios):.3f}")
    return 0


def stacked_lines(cfg: RunConfig, seeds: list[int], dev: torch.device, cuda_only: bool = True) -> list[str]:
    """`--stacked`: the engine's separate runs of `seeds` (one after another) against `adlapp.stacked.train_stacked`
    (all seeds as one vmapped model), each timed from start to return after an untimed one-epoch warm-up of both,
    and the largest gap between their final test scores. A CUDA feature: on any other device (unless `cuda_only`
    is False, as the tests do on CPU) it only says that it was skipped."""
    if cuda_only and dev.type != "cuda":
        return [f"stacked: skipped: stacked training (--stacked) is a CUDA feature; on {dev.type} it is slower than "
                "separate runs"]
    from adlapp.stacked import STACKED_ATOL, STACKED_RTOL, train_stacked
    from adlapp.train import train

    warm = replace(cfg, epochs=1)
    train(warm, seeds[0], device=str(dev))
    train_stacked(warm, seeds, device=str(dev))
    _sync(dev)
    t0 = time.perf_counter()
    separate = [train(cfg, seed, device=str(dev)) for seed in seeds]
    _sync(dev)
    t1 = time.perf_counter()
    stacked = train_stacked(cfg, seeds, device=str(dev))
    _sync(dev)
    t2 = time.perf_counter()
    gap, worst, within = 0.0, "", True
    for one, many in zip(separate, stacked, strict=True):
        if (one.status, one.diverged_epoch) != (many.status, many.diverged_epoch):
            within, worst = False, f"seed {one.seed} ended {one.status} alone but {many.status} stacked"
            continue
        for name, value in one.tests.get(cfg.epochs, {}).items():
            other = many.tests[cfg.epochs][name]
            within = within and abs(value - other) <= STACKED_ATOL + STACKED_RTOL * abs(value)
            if abs(value - other) > gap:
                gap, worst = abs(value - other), f"test {name}, seed {one.seed}"
    return [f"stacked: {len(seeds)} seeds x {cfg.epochs} epochs on {dev}: engine one run after another "
            f"{t1 - t0:.2f} s, stacked (vmap) {t2 - t1:.2f} s, speedup_stacked_vs_engine={(t1 - t0) / (t2 - t1):.3f}",
            f"stacked: largest final test score gap {gap:.3g}" + (f" ({worst})" if worst else "")
            + f"; within rtol {STACKED_RTOL:g} / atol {STACKED_ATOL:g}: {_yes(within)} (GPU kernels need not be "
            "deterministic, and BN + Adam amplifies rounding: see adlapp.stacked)"]


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"
