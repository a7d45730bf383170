from dataclasses import replace

import pytest

from adlapp.config import (
    VARIANTS,
    ConfigError,
    base_config,
    config_from_dict,
    config_to_dict,
    run_key,
    variant,
    variant_label,
)


def test_registry_variants_differ_from_base_only_where_named():
    assert variant("cnn/bn-adam").model.batchnorm and not variant("cnn/adam").model.batchnorm
    assert variant("cnn/sgd").optim.name == "sgd" and variant("cnn/sgd").optim.momentum == 0.9
    assert variant("cnn/sgd").optim.lr == variant("cnn/adam").optim.lr == 0.01
    assert variant("unet/nearest-elu").model.upsampling == "nearest"
    assert variant("unet/nearest-elu").model.activation == "elu"
    assert variant("unet/normal").eval_at == (200, 400) and variant("unet/normal").epochs == 1000
    assert variant("bn-adam") == variant("cnn/bn-adam")


def test_labels_round_trip_through_the_registry():
    for name in VARIANTS:
        assert variant_label(variant(name)) == name
    custom = replace(variant("cnn/adam"), model=replace(variant("cnn/adam").model, activation="gelu"))
    assert variant_label(custom) == "cnn/nobn-gelu-adam"
    # training length and data size do not change which variant a config is
    assert variant_label(replace(variant("cnn/sgd"), epochs=3)) == "cnn/sgd"


def test_run_key_is_stable_and_sensitive():
    cfg = variant("cnn/adam")
    assert run_key(cfg, 0) == run_key(variant("cnn/adam"), 0)
    assert run_key(cfg, 0) != run_key(cfg, 1)
    assert run_key(cfg, 0) != run_key(replace(cfg, epochs=199), 0)
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize("change,field", [
    (dict(epochs=0), "epochs"), (dict(batch_size=0), "batch_size"), (dict(experiment="rnn"), "experiment"),
    (dict(eval_at=(0,)), "eval_at"),
])
def test_invalid_configs_name_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        replace(base_config("cnn"), **change)


def test_invalid_optimizer_values():
    cfg = base_config("cnn")
    with pytest.raises(ConfigError, match="lr"):
        replace(cfg, optim=replace(cfg.optim, lr=-1.0))
    with pytest.raises(ConfigError, match="optimizer"):
        replace(cfg, optim=replace(cfg.optim, name="rmsprop"))


def test_unknown_variant_and_unknown_fields():
    with pytest.raises(ConfigError, match="unknown"):
        variant("cnn/resnet")
    with pytest.raises(ConfigError, match="bogus"):
        config_from_dict({**config_to_dict(base_config("cnn")), "bogus": 1})


def test_test_epochs_always_include_the_last():
    cfg = replace(base_config("unet"), epochs=10, eval_at=(2, 4, 50))
    assert cfg.test_epochs == (2, 4, 10)
