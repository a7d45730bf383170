"""adlapp.reading on runs written through a real RunStore (enqueue → claim → record_epoch → finish).

Every number the sentences must quote is computed here by adlapp.stats itself (the oracle), so the reading
can only pass by showing stats' numbers: Δ, CI, adjusted p, n, seeds needed, the course z.
"""
import pytest

from adlapp import reading, stats
from adlapp.config import variant
from adlapp.store import RunStore, RunTables

pytestmark = pytest.mark.filterwarnings("error")


def record(store: RunStore, name: str, seed: int, tests: dict[int, dict[str, float]]) -> str:
    """One finished run of the registry variant `name` with test metrics {epoch: {metric: value}}."""
    key, _ = store.enqueue(variant(name), seed, command="pytest")
    assert store.claim(key) is not None
    for epoch, metrics in sorted(tests.items()):
        store.record_epoch(key, epoch, {}, tests=metrics)
    store.finish(key, "done")
    return key


def cnn_store(tmp_path, accs: dict[str, list[float]]) -> RunTables:
    store = RunStore(tmp_path / "store")
    for name, values in accs.items():
        for seed, acc in enumerate(values):
            record(store, name, seed, {200: {"acc": acc, "loss": 1 - acc}})
    return store.tables()


def minus(text: str) -> str:
    return text.replace("-", "\u2212")


def test_clearly_separated_variants_are_significant_with_ci_adjusted_p_and_n(tmp_path):
    accs = {"cnn/bn-adam": [0.80, 0.81, 0.82], "cnn/adam": [0.60, 0.62, 0.61], "cnn/sgd": [0.40, 0.41, 0.43]}
    lines = reading.course_reading(cnn_store(tmp_path, accs))
    head = lines[0]
    assert head.startswith("**CNN, test accuracy after epoch 200**")
    assert "n = 3 per variant" in head and "Holm over 3 pairs" in head
    assert "3 of 3 pairs differ significantly" in head
    oracle = stats.pairwise({"BN + Adam": accs["cnn/bn-adam"], "Adam": accs["cnn/adam"], "SGD": accs["cnn/sgd"]})
    assert oracle["significant"].all()
    for r in oracle.to_dict("records"):
        line = next(s for s in lines if s.startswith(f"{r['a']} is higher than {r['b']}:"))
        assert f"Δ = +{r['diff']:.3f}, 95 % CI [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" in line
        assert f"adjusted p {reading._p(r['p_adjusted'])}" in line and "n = 3 vs 3" in line
    assert not any("not significant" in s.lower() for s in lines)


def test_overlapping_variants_are_not_significant_and_get_the_seeds_needed(tmp_path):
    accs = {"cnn/bn-adam": [0.50, 0.56, 0.53], "cnn/adam": [0.52, 0.55, 0.49], "cnn/sgd": [0.51, 0.54, 0.58]}
    [line] = reading.course_reading(cnn_store(tmp_path, accs))
    oracle = stats.pairwise({"BN + Adam": accs["cnn/bn-adam"], "Adam": accs["cnn/adam"], "SGD": accs["cnn/sgd"]})
    assert not oracle["significant"].any()
    assert "no difference is significant" in line and "n = 3 per variant" in line
    clearest = oracle.loc[oracle["cohens_d"].abs().idxmax()]
    assert f"The clearest difference is {clearest['a']} vs {clearest['b']}:" in line
    needed = stats.seeds_needed(abs(clearest["cohens_d"]), alpha=0.05, power=0.8, comparisons=3)
    assert f"about {needed} seeds per group" in line and "α = 0.05/3" in line
    assert "noisy" in line


def test_unet_budgets_the_reports_z_and_the_elu_loss_claim(tmp_path):
    store = RunStore(tmp_path / "store")
    normal = {200: [0.970, 0.974, 0.972], 400: [0.971, 0.975, 0.972], 1000: [0.973, 0.971, 0.976]}
    elu = {200: [0.971, 0.973, 0.975], 400: [0.972, 0.974, 0.973], 1000: [0.972, 0.975, 0.974]}
    loss = {"unet/normal": [0.080, 0.082, 0.081], "unet/elu": [0.050, 0.051, 0.053]}      # at 200
    for name, pix in (("unet/normal", normal), ("unet/elu", elu)):
        for seed in range(3):
            record(store, name, seed, {e: {"pixel_acc": pix[e][seed], "f1": 0.7,
                                           "loss": loss[name][seed] if e == 200 else 0.07} for e in pix})
    lines = reading.course_reading(store.tables())
    budgets = [s for s in lines if s.startswith("**U-Net, test pixel accuracy after epoch")]
    assert [s.split("epoch ")[1].split("**")[0] for s in budgets] == ["200", "400", "1000"]
    assert all("Holm over 1 pair" in s for s in budgets)

    [z_line] = [s for s in lines if s.startswith("**Normal, 1000 vs 200 epochs**")]
    res = stats.compare(normal[1000], normal[200])
    z = minus(f"{res['z_seed']:.2f}")
    assert f"z = d/√2 = {z} (the report: 0.17σ)" in z_line
    assert "not significant" in z_line and f"Welch p {reading._p(res['welch_p'])}" in z_line
    needed = stats.seeds_needed(abs(res["cohens_d"]), alpha=0.05, power=0.8, comparisons=1)
    assert f"about {needed} seeds per group" in z_line and "n = 3 vs 3" in z_line
    assert "same runs scored twice" in z_line

    [claim] = [s for s in lines if "ELU gives a lower test loss" in s]
    diff = minus(f"{stats.compare(loss['unet/elu'], loss['unet/normal'])['diff']:+.3f}")
    assert "supported by these seeds" in claim and "not supported" not in claim
    assert f"Using ELU vs Normal: Δ = {diff}" in claim and "significantly lower" in claim
    assert "Holm over 1 pair" in claim and "after epoch 200" in claim


def test_two_seeds_are_shown_but_not_tested(tmp_path):
    accs = {"cnn/adam": [0.50, 0.60], "cnn/sgd": [0.40, 0.45]}
    [line] = reading.course_reading(cnn_store(tmp_path, accs))
    assert "n = 2 per variant" in line and "not tested" in line and "significant" not in line
    d = abs(stats.compare(accs["cnn/adam"], accs["cnn/sgd"])["cohens_d"])
    assert f"about {stats.seeds_needed(d, comparisons=1)} seeds per group" in line


def test_no_finished_runs_reads_nothing(tmp_path):
    assert reading.course_reading(RunTables.empty()) == []
    store = RunStore(tmp_path / "store")
    store.enqueue(variant("cnn/adam"), 0)                       # queued, not a result
    assert reading.course_reading(store.tables()) == []


def test_identical_seeds_are_not_tested_and_say_why(tmp_path):
    accs = {"cnn/bn-adam": [0.7, 0.7, 0.7], "cnn/adam": [0.6, 0.6, 0.6]}     # zero spread: Welch undefined
    assert not stats.compare(accs["cnn/bn-adam"], accs["cnn/adam"])["testable"]
    [line] = reading.course_reading(cnn_store(tmp_path, accs))
    assert "not tested, since the seeds of each variant agree exactly" in line and "Δ = +0.100" in line
    assert "No seeds can be planned" in line and "nan" not in line.lower()
