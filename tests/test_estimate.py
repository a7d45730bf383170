"""The cost estimate: rates measured from recorded epochs, most specific first, and said where they come from."""
from dataclasses import replace

import pandas as pd

from adlapp import estimate
from adlapp.config import run_key, training_signature, variant
from adlapp.store import RunTables


def recorded(cfg, seconds: list[float], device: str = "cpu", key: str = "0123456789abcdef") -> RunTables:
    """One finished run of `cfg` whose epochs took `seconds` (epoch 1 first)."""
    import json

    from adlapp.config import config_to_dict
    runs = pd.DataFrame([{"key": key, "experiment": cfg.experiment, "device": device,
                          "config": json.dumps(config_to_dict(cfg))}])
    epochs = pd.DataFrame({"key": key, "epoch": range(1, len(seconds) + 1), "name": "seconds",
                           "value": seconds})
    return RunTables(runs, epochs, pd.DataFrame(columns=["key", "epoch", "name", "value"]))


def test_the_rate_of_the_same_training_is_used_without_its_first_epoch():
    cfg = variant("cnn/sgd")
    t = recorded(cfg, [9.0, 2.0, 2.0, 4.0])                 # epoch 1 (start-up) is left out: median 2.0
    cost = estimate.training_cost([(cfg, 5), (cfg, 6)], t.runs, t.epochs, "cpu")
    assert (cost.runs, cost.epochs, cost.seconds) == (2, 400, 800.0)
    assert "measured for these runs" in cost.basis
    assert cost.needs_confirmation                             # 13 min > 10 min


def test_a_similar_training_is_scaled_by_its_data_size_and_other_devices_are_ignored():
    cfg = variant("cnn/sgd")
    bigger = replace(cfg, data=replace(cfg.data, train_per_class=40), epochs=10)
    assert training_signature(bigger) != training_signature(cfg)
    t = recorded(cfg, [1.0, 1.5, 1.5])
    cost = estimate.training_cost([(bigger, 0)], t.runs, t.epochs, "cpu")
    assert cost.seconds == 10 * 1.5 * 40 / 20 and "scaled by data size" in cost.basis
    elsewhere = estimate.training_cost([(bigger, 0)], t.runs, t.epochs, "cuda (NVIDIA H200)")
    assert "rough" in elsewhere.basis


def test_a_resumed_run_costs_only_its_remaining_epochs_and_nothing_recorded_is_rough():
    cfg = replace(variant("unet/elu"), epochs=100)
    empty = RunTables.empty()
    cost = estimate.training_cost([(cfg, 0)], empty.runs, empty.epochs, "cpu",
                                  done_epochs={run_key(cfg, 0): 60})
    assert cost.epochs == 40
    assert cost.seconds == 40 * estimate.ROUGH_SECONDS_PER_EPOCH["unet"]
    assert "rough" in cost.basis and not cost.needs_confirmation
