"""12 short CNN runs through the local process backend and through Ray (a local 2-worker cluster): wall time
and overhead per run, for docs/scale.md.

    python scripts/bench_ray.py /tmp/bench-ray [local] [ray]

Overhead per run = (wall time x 2 workers - summed training seconds) / 12. Run from the checkout with Ray
installed (pip install -r requirements-ray.txt).
"""
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
from adlapp.config import variant
from adlapp.jobs import LocalProcessBackend
from adlapp.ray_backend import RayBackend
from adlapp.store import RunStore

base = variant("cnn/bn-adam")
cfg = replace(base, epochs=3, data=replace(base.data, train_per_class=1))
makers = {"local": lambda s: LocalProcessBackend(s, concurrency=2, device="cpu"),
          "ray": lambda s: RayBackend(s, concurrency=2, device="cpu", threads=1)}
for name in sys.argv[2:] or ["local", "ray"]:
    store = RunStore(Path(sys.argv[1]) / name)
    jobs = makers[name](store)
    t0 = time.time()
    keys = jobs.submit([(cfg, s) for s in range(12)], command=f"bench:{name}").queued
    while not all(v == "done" for v in store.statuses(keys).values()):
        time.sleep(0.2)
    wall = time.time() - t0
    epochs, _ = store.epoch_metrics(keys)
    train_s = epochs.loc[epochs["name"] == "seconds", "value"].sum()
    print(name, f"wall {wall:.1f} s, overhead per run {(wall * 2 - train_s) / 12:.2f} s")
    for pid in jobs.live_workers():
        os.kill(pid, 15)           # the dispatcher would otherwise wait 60 s for more work
