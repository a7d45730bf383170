"""The engine options (RunConfig.channels_last, .precision): keys, labels, refusals, the trainer, CLI and bench."""
import re
from dataclasses import replace

import pytest
import torch

from adlapp.cli import _parser, build_config, main
from adlapp.config import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    display_name,
    run_key,
    training_signature,
    variant,
    variant_label,
)
from adlapp.planning import StudyChoice, Toggles, make_requests
from adlapp.train import train


def tiny_cnn(**kw):
    cfg = variant("cnn/bn-adam")
    return replace(cfg, epochs=3, data=replace(cfg.data, train_per_class=3), **kw)


def tiny_unet(**kw):
    cfg = variant("unet/normal")
    return replace(cfg, epochs=3, eval_at=(), batch_size=4, model=replace(cfg.model, base_width=4, depth=2),
                   data=replace(cfg.data, n_train=4, image_size=32), **kw)


def test_defaults_keep_every_key_and_options_make_new_runs_labelled_apart():
    cfg = variant("unet/normal")
    # The key of a default-engine run is the one it had before the options existed (cached_runs/ relies on it).
    assert run_key(cfg, 0) == "e3fe63918ec33ef1"
    assert "channels_last" not in training_signature(cfg) and "precision" not in training_signature(cfg)
    fast = replace(cfg, channels_last=True, precision="bf16")
    assert run_key(fast, 0) != run_key(cfg, 0)
    assert training_signature(fast) != training_signature(cfg)
    assert config_from_dict(config_to_dict(fast)) == fast
    assert variant_label(fast) == "unet/normal@channels_last+bf16"
    assert display_name(variant_label(fast)) == "Normal (channels-last, bf16 autocast)"
    assert display_name(variant_label(replace(variant("cnn/sgd"), precision="bf16"))) == "SGD (bf16 autocast)"
    custom = replace(variant("cnn/sgd"), channels_last=True, optim=replace(variant("cnn/sgd").optim, lr=0.005))
    assert display_name(variant_label(custom)) == "Custom: SGD, lr 0.005, ELU (channels-last)"


@pytest.mark.parametrize("change, message", [
    (dict(precision="fp16"), "precision='fp16': must be one of fp32, bf16"),
    (dict(channels_last="yes"), "channels_last='yes': must be true or false"),
])
def test_bad_engine_values_are_refused_by_name(change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        replace(variant("cnn/adam"), **change)


def test_channels_last_trains_nhwc_weights_and_lands_on_the_same_numbers():
    """Same seed, same batches: channels-last changes only how tensors sit in memory and so the order of float
    additions inside a convolution. The first epoch's training loss agrees to 1e-4 (measured: up to 2.6e-5 at one
    thread, where other kernels are chosen than at two); after that the last-bit
    differences grow through the optimiser (the tiny CNN's validation loss is ~11, far from converged) but stay
    under 0.5 % (measured: 0.13 %), and accuracies move by at most one image. The weights it hands out are
    NHWC during training."""
    layouts = []

    def on_weights(epoch, state):
        convs = [v for v in state.values() if v.dim() == 4 and v.shape[-1] > 1]     # the 3x3 and 5x5 kernels
        layouts.append(bool(convs) and all(v.is_contiguous(memory_format=torch.channels_last)
                                           and not v.is_contiguous() for v in convs))

    for make in (tiny_cnn, tiny_unet):
        plain = train(make(), 1, device="cpu")
        nhwc = train(make(channels_last=True), 1, device="cpu", on_weights=on_weights)
        assert nhwc.status == "done"
        assert nhwc.history[0]["train_loss"] == pytest.approx(plain.history[0]["train_loss"], rel=1e-4)
        for a, b in zip(plain.history, nhwc.history, strict=True):
            for k in a.keys() - {"seconds", "epoch"}:
                if "acc" in k or "f1" in k:          # at most one image (of 159) or a few pixels may flip
                    assert b[k] == pytest.approx(a[k], abs=0.01), (make.__name__, k)
                else:
                    assert b[k] == pytest.approx(a[k], rel=5e-3), (make.__name__, k)
    assert layouts and all(layouts)


def test_bf16_autocast_trains_and_stays_close_to_fp32():
    """bf16 autocast (the forward pass in bfloat16, weights and optimiser fp32) on the CPU: finite losses that
    follow fp32's, and a test score within 2 cards of 159 (3 epochs on 3 cards a class)."""
    plain, half = train(tiny_cnn(), 2, device="cpu"), train(tiny_cnn(precision="bf16"), 2, device="cpu")
    assert half.status == "done"
    assert [h["train_loss"] for h in half.history] != [h["train_loss"] for h in plain.history]   # it did change
    for a, b in zip(plain.history, half.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.02)
    assert abs(half.tests[3]["acc"] - plain.tests[3]["acc"]) <= 2 / 159 + 1e-9


def test_the_cli_and_the_pages_set_the_engine_options():
    cfg = build_config(_parser("train").parse_args(["train", "unet", "--channels-last", "--precision", "bf16"]))
    assert cfg.channels_last is True and cfg.precision == "bf16"
    assert build_config(_parser("train").parse_args(["train", "unet"])) == variant("unet/normal")
    choice = StudyChoice("cnn", variants=("cnn/adam",), common=Toggles(channels_last=True, precision="bf16"),
                         seeds=(0,))
    requests, errors = make_requests(choice)
    assert not errors and len(requests) == 1
    config, seed = requests[0]
    assert config.channels_last and config.precision == "bf16" and seed == 0


def test_the_stacked_trainer_refuses_engine_options():
    from adlapp.stacked import train_stacked
    with pytest.raises(ValueError, match="fp32 with the default memory format"):
        train_stacked(tiny_cnn(precision="bf16"), [0, 1], device="cpu")


def test_bench_with_engine_options_prints_the_accuracy_check(capsys):
    code = main(["bench", "--experiment", "unet", "--seeds", "1", "--epochs", "2", "--n-train", "4", "--threads",
                 "1", "--channels-last", "--precision", "bf16"])
    out = capsys.readouterr().out
    assert code == 0
    assert "the engine with channels-last, bf16 autocast" in out.splitlines()[0]
    assert re.search(r"accuracy check \(channels-last, bf16 autocast vs the fp32 notebook loop, same seeds and "
                     r"batches\): final test pixel_acc adlapp - notebook per seed [+-]\d\.\d{4}; f1 ", out), out
    assert "identical" not in out                   # other arithmetic: equality is not what it claims
    assert re.fullmatch(r"speedup_vs_notebook=\d+\.\d{3}", out.strip().splitlines()[-1])


def test_the_unet_page_plans_engine_runs_as_new_runs(app_env, course_bundles, monkeypatch):
    """The shipped (fp32) runs serve the default engine; asking for channels-last + bf16 plans new runs under
    their own name, so the two are never pooled."""
    from conftest import ROOT, tiny_unet_page
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ADLAPP_CACHED_RUNS", str(course_bundles))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/unet.py").run()
    at = tiny_unet_page(at)
    assert set(at.dataframe[0].value["where"]) == {"done (shipped with the app)"}
    at.checkbox(key="unet_channels_last").check()
    at.selectbox(key="unet_precision").set_value("bf16").run()
    assert not at.exception, at.exception
    plan = at.dataframe[0].value
    assert "done (shipped with the app)" not in set(plan["where"]), plan
    assert all(name.endswith("(channels-last, bf16 autocast)") for name in plan["variant"]), plan["variant"]
    assert not at.button(key="unet_train_btn").disabled
