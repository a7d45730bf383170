"""The real trainer on tiny sizes: store integration, determinism, resume, divergence, segmentation."""
from dataclasses import replace

from adlapp.config import DataConfig, variant
from adlapp.runner import TerminationFlag, run_claimed
from adlapp.store import RunStore
from adlapp.train import train


def tiny_cnn(name="cnn/bn-adam", epochs=2, **kw):
    cfg = variant(name)
    return replace(cfg, epochs=epochs, data=replace(cfg.data, train_per_class=2), **kw)


def tiny_unet(name="unet/normal", epochs=3, eval_at=(2,)):
    cfg = variant(name)
    return replace(cfg, epochs=epochs, eval_at=eval_at, batch_size=4,
                   model=replace(cfg.model, base_width=4, depth=2),
                   data=replace(cfg.data, n_train=4, image_size=32))


def test_two_epoch_run_through_the_store(tmp_path):
    store = RunStore(tmp_path)
    cfg = tiny_cnn()
    key, _ = store.enqueue(cfg, 0)
    assert store.claim(key)
    assert run_claimed(store, key, cfg, 0, device="cpu") == "done"
    run = store.get(key)
    assert run["status"] == "done" and run["last_epoch"] == 2 and run["device"] == "cpu"
    assert "torch" in run["versions"]
    epochs, _ = store.epoch_metrics([key])
    assert set(epochs["name"]) == {"train_loss", "val_loss", "val_acc", "seconds"}
    assert sorted(epochs["epoch"].unique()) == [1, 2]
    tests = store.test_metrics([key])
    assert set(tests["name"]) == {"acc", "loss", "best_acc", "best_loss", "best_epoch"} and set(tests["epoch"]) == {2}
    assert 0.0 <= tests.loc[tests["name"] == "acc", "value"].item() <= 1.0
    # A done run keeps its last epoch's checkpoint: it can be continued for more epochs (tests/test_continue.py).
    assert [f.name for f in store.checkpoint_dir(key).glob("*")] == ["last.pt"]


def _numbers(result):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in result.history], result.tests


def test_same_config_and_seed_on_cpu_is_identical():
    cfg = tiny_cnn(epochs=2)
    a, b = train(cfg, 3, device="cpu"), train(cfg, 3, device="cpu")
    assert _numbers(a) == _numbers(b)
    c = train(cfg, 4, device="cpu")
    assert _numbers(a) != _numbers(c)


def test_resume_ends_exactly_like_an_uninterrupted_run(tmp_path):
    cfg = tiny_cnn("cnn/sgd", epochs=4)
    full = train(cfg, 1, device="cpu")
    stops = iter([False, True])                       # stop after epoch 2, as a cancel would
    part = train(cfg, 1, device="cpu", checkpoint_dir=tmp_path, should_stop=lambda: next(stops))
    assert part.status == "cancelled" and part.epochs_done == 2
    resumed = train(cfg, 1, device="cpu", checkpoint_dir=tmp_path)
    assert resumed.status == "done"
    assert _numbers(resumed) == _numbers(full)


def test_non_finite_loss_is_diverged_not_a_crash(tmp_path):
    cfg = tiny_cnn("cnn/sgd", epochs=5)
    cfg = replace(cfg, optim=replace(cfg.optim, lr=1e12))
    store = RunStore(tmp_path)
    key, _ = store.enqueue(cfg, 0)
    store.claim(key)
    assert run_claimed(store, key, cfg, 0, device="cpu") == "diverged"
    run = store.get(key)
    assert run["status"] == "diverged" and 1 <= run["diverged_epoch"] <= 5
    assert "non-finite" in run["error"]


def test_failure_is_recorded_with_its_message(tmp_path):
    cfg = replace(tiny_cnn(), data=DataConfig(name=str(tmp_path / "missing")))
    store = RunStore(tmp_path / "s")
    key, _ = store.enqueue(cfg, 0)
    store.claim(key)
    assert run_claimed(store, key, cfg, 0, device="cpu") == "failed"
    assert "missing" in store.get(key)["error"]


def test_segmentation_run_scores_test_at_eval_epochs():
    result = train(tiny_unet(), 0, device="cpu")
    assert result.status == "done"
    assert set(result.history[-1]) == {"epoch", "train_loss", "val_loss", "val_f1", "val_pixel_acc", "seconds"}
    assert sorted(result.tests) == [2, 3]
    for t in result.tests.values():
        assert set(t) == {"loss", "f1", "pixel_acc", "best_loss", "best_f1", "best_pixel_acc", "best_epoch"}
        assert 0 <= t["f1"] <= 1 and 0 <= t["pixel_acc"] <= 1


def test_cancel_flag_stops_after_the_current_epoch(tmp_path):
    store = RunStore(tmp_path)
    cfg = tiny_cnn(epochs=50)
    key, _ = store.enqueue(cfg, 0)
    store.claim(key)
    flag = TerminationFlag()
    flag.set = True
    assert run_claimed(store, key, cfg, 0, device="cpu", flag=flag) == "cancelled"
    assert store.get(key)["last_epoch"] == 1
    assert (store.checkpoint_dir(key) / "last.pt").exists()
