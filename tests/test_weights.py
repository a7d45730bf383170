"""Model weights at every test epoch: written by the real trainer, checked against the scores it stored, carried
by bundles, and refused whole when a stranger's bundle holds anything but well-formed tensors of its own runs.

The independent check: a fresh model loaded from epoch E's file and scored on the test split gives exactly the
test metrics the trainer recorded at E (as micrograd checks itself against torch).
"""
import hashlib
import json
import struct
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import pytest
import torch

from adlapp import weights
from adlapp.bundle import BundleError, export_store, import_bundle, read_bundle
from adlapp.cli import _records
from adlapp.config import EXPERIMENT_INFO
from adlapp.data import load_data
from adlapp.models import build_model
from adlapp.runner import run_claimed
from adlapp.store import RunStore, StoreError
from adlapp.train import evaluate
from tests.conftest import ROOT, tiny, train_into

CNN, UNET = "cnn/bn-adam", "unet/normal"      # bn-adam: BatchNorm, so an int64 buffer is stored too


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One store with a tiny CNN and a tiny U-Net run, trained for real; {variant: key}."""
    store = RunStore(tmp_path_factory.mktemp("weights") / "store")
    keys = {name: train_into(store, tiny(name), seeds=(0,))[0] for name in (CNN, UNET)}
    return SimpleNamespace(store=store, keys=keys)


@pytest.fixture(scope="module")
def bundle_path(trained, tmp_path_factory):
    return export_store(trained.store, tmp_path_factory.mktemp("bundle") / "study.zip")


def fresh_model(cfg):
    data = load_data(cfg.data, EXPERIMENT_INFO[cfg.experiment].task)
    if cfg.experiment == "cnn":
        return build_model(cfg, num_classes=data.num_classes), data
    return build_model(cfg, in_channels=data.train_x.shape[1]), data


# -- the trainer's weights -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [CNN, UNET])
def test_weights_at_each_test_epoch_reproduce_the_stored_test_scores(trained, name):
    cfg, key, store = tiny(name), trained.keys[name], trained.store
    assert store.weight_epochs(key) == list(cfg.test_epochs)
    assert [p.name for p in store.checkpoint_dir(key).glob("*")] == ["last.pt"]   # kept to continue the run
    tests = store.test_metrics([key])
    for epoch in cfg.test_epochs:
        model, data = fresh_model(cfg)
        weights.load_into(model, store.weights_dir(key) / f"epoch-{epoch}.safetensors")
        got = evaluate(model, cfg, data.test_x, data.test_y)
        rows = tests[tests["epoch"] == epoch].set_index("name")["value"]
        assert set(got) <= set(rows.index)
        for metric, value in got.items():
            assert value == pytest.approx(rows[metric], abs=1e-6), (epoch, metric)


def test_weights_files_hold_tensors_only(trained):
    path = trained.store.weights_dir(trained.keys[CNN]) / "epoch-2.safetensors"
    header = weights.check_file(path.read_bytes(), 2 ** 24)
    assert {dtype for dtype, _ in header.values()} == {"F32", "I64"}      # I64: num_batches_tracked
    assert not path.read_bytes().startswith(b"PK") and b"\x80\x02" not in path.read_bytes()[:2]   # no zip/pickle


def test_a_file_that_does_not_fit_the_model_is_one_clear_line(trained):
    path = trained.store.weights_dir(trained.keys[CNN]) / "epoch-2.safetensors"
    model, _ = fresh_model(tiny(UNET))
    with pytest.raises(weights.WeightsError) as err:
        weights.load_into(model, path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_resume_after_a_cancel_keeps_one_file_per_test_epoch(trained, tmp_path):
    cfg = tiny(UNET)
    store = RunStore(tmp_path / "store")
    key, _ = store.enqueue(cfg, 0)
    store.claim(key)
    flag = SimpleNamespace(set=False)

    def stop_after_first(report):
        flag.set = True                     # asked after epoch 2: cancelled there, with a checkpoint
    assert run_claimed(store, key, cfg, 0, device="cpu", flag=flag, progress=stop_after_first,
                       checkpoint_every=1) == "cancelled"
    assert store.weight_epochs(key) == [1, 2]
    first = (store.weights_dir(key) / "epoch-1.safetensors").stat().st_mtime_ns
    store.requeue([key])
    store.claim(key)
    assert run_claimed(store, key, cfg, 0, device="cpu", flag=SimpleNamespace(set=False)) == "done"
    assert sorted(p.name for p in store.weights_dir(key).iterdir()) == [
        "epoch-1.safetensors", "epoch-2.safetensors", "epoch-3.safetensors"]
    assert (store.weights_dir(key) / "epoch-1.safetensors").stat().st_mtime_ns == first   # not rewritten
    # The resumed run ends with the weights of the uninterrupted one (same config and seed: same key).
    assert key == trained.keys[UNET]
    same = trained.store.weights_dir(key) / "epoch-3.safetensors"
    assert (store.weights_dir(key) / "epoch-3.safetensors").read_bytes() == same.read_bytes()


def test_delete_removes_the_weights_and_weights_dir_refuses_non_keys(tmp_path):
    store = RunStore(tmp_path / "store")
    (key,) = train_into(store, tiny(CNN), seeds=(3,))
    assert store.weight_epochs(key) == [2]
    store.delete(key)
    assert not store.weights_dir(key).exists()
    for bad in ("../x", "../../home", "0123456789ABCDEF", ""):
        with pytest.raises(StoreError):
            store.weights_dir(bad)


def test_runs_json_lists_the_stored_weights(trained):
    records = {r["id"]: r for r in _records(trained.store, None, None)}
    assert records[trained.keys[CNN]]["weights"] == [2]
    assert records[trained.keys[UNET]]["weights"] == [1, 2, 3]


# -- bundles ---------------------------------------------------------------------------------------------------
def test_export_then_import_brings_the_files_byte_identical(trained, bundle_path, tmp_path):
    with zipfile.ZipFile(bundle_path) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("weights/"))
    assert names == sorted(f"weights/{key}/epoch-{e}.safetensors" for name, key in trained.keys.items()
                           for e in tiny(name).test_epochs)
    dst = RunStore(tmp_path / "dst")
    assert sorted(import_bundle(dst, bundle_path)) == sorted(trained.keys.values())
    for key in trained.keys.values():
        assert dst.weight_epochs(key) == trained.store.weight_epochs(key)
        for e in dst.weight_epochs(key):
            name = f"epoch-{e}.safetensors"
            assert (dst.weights_dir(key) / name).read_bytes() == (trained.store.weights_dir(key) / name).read_bytes()


def test_importing_weights_does_not_import_torch(bundle_path, tmp_path):
    code = ("import sys; from adlapp.bundle import import_bundle; from adlapp.store import RunStore; "
            "s = RunStore(sys.argv[2]); keys = import_bundle(s, sys.argv[1]); "
            "assert sum(len(s.weight_epochs(k)) for k in keys) == 4; "
            "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(bundle_path), str(tmp_path / "s")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def members_of(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def repack(path, members: dict[str, bytes], checksums: bool = True):
    """A zip of `members` whose manifest lists every weights member with its real checksum."""
    manifest = json.loads(members["manifest.json"])
    sums = {n: v for n, v in manifest["sha256"].items() if not n.startswith("weights/")}
    if checksums:
        sums.update({n: hashlib.sha256(b).hexdigest() for n, b in members.items() if n.startswith("weights/")})
    manifest["sha256"] = sums
    members = {**members, "manifest.json": json.dumps(manifest).encode()}
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    return path


def safetensors_bytes(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def refused_on_import(path, tmp_path, *words):
    """import_bundle refuses `path` with one line naming it and `words`; nothing reaches the store."""
    store = RunStore(tmp_path / "victim")
    with pytest.raises(BundleError) as err:
        import_bundle(store, path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    for word in words:
        assert word in msg, msg
    assert store.runs().empty and not (store.root / "weights").exists()
    return msg


def one_weights_member(members, key):
    return next(b for n, b in members.items() if n.startswith(f"weights/{key}/"))


def test_weights_members_outside_the_pattern_or_the_runs_are_refused(trained, bundle_path, tmp_path):
    members = members_of(bundle_path)
    cnn, unet = trained.keys[CNN], trained.keys[UNET]
    blob = one_weights_member(members, cnn)
    cases = {
        "traversal": ({f"weights/{cnn}/../../../evil.safetensors": blob}, "unexpected member"),
        "absolute": ({"/etc/epoch-2.safetensors": blob}, "unexpected member"),
        "leading zero": ({f"weights/{cnn}/epoch-02.safetensors": blob}, "unexpected member"),
        "unknown key": ({"weights/0123456789abcdef/epoch-2.safetensors": blob}, "not a run of this bundle"),
        "not a test epoch": ({f"weights/{cnn}/epoch-1.safetensors": blob}, "epoch 1"),
        "past the last epoch": ({f"weights/{unet}/epoch-4.safetensors": blob}, "epoch 4"),
    }
    for case, (extra, word) in cases.items():
        refused_on_import(repack(tmp_path / f"{case}.zip", {**members, **extra}), tmp_path / case, word)


def test_weights_with_a_wrong_or_missing_checksum_are_refused(trained, bundle_path, tmp_path):
    members = members_of(bundle_path)
    name = next(n for n in members if n.startswith("weights/"))
    tampered = repack(tmp_path / "t.zip", members)
    manifest = json.loads(members_of(tampered)["manifest.json"])
    manifest["sha256"][name] = "0" * 64
    with zipfile.ZipFile(tmp_path / "sum.zip", "w") as zf:
        for n, b in {**members, "manifest.json": json.dumps(manifest).encode()}.items():
            zf.writestr(n, b)
    refused_on_import(tmp_path / "sum.zip", tmp_path / "a", "checksum")
    refused_on_import(repack(tmp_path / "none.zip", members, checksums=False), tmp_path / "b", "no checksum")
    stripped = {n: b for n, b in members.items() if n != name}      # listed in the manifest, not in the zip
    manifest = json.loads(members["manifest.json"])
    with zipfile.ZipFile(tmp_path / "gone.zip", "w") as zf:
        for n, b in {**stripped, "manifest.json": json.dumps(manifest).encode()}.items():
            zf.writestr(n, b)
    refused_on_import(tmp_path / "gone.zip", tmp_path / "c", "lacks")


def test_malformed_weights_files_are_refused(trained, bundle_path, tmp_path):
    members = members_of(bundle_path)
    name = next(n for n in members if n.startswith(f"weights/{trained.keys[CNN]}/"))
    good = members[name]
    cases = {
        "truncated": (good[:-10], "outside"),
        "empty": (b"", "too short"),
        "oversized header": (struct.pack("<Q", 2 ** 40) + b"{}", "at most 1,048,576"),
        "header past the end": (struct.pack("<Q", 500) + b"{}", "does not fit"),
        "garbage header": (struct.pack("<Q", 8) + b"\xff\xfe not!!", "not JSON"),
        "a list header": (safetensors_bytes([], b""), "JSON list"),
        "float64": (safetensors_bytes({"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}}, bytes(16)),
                    "dtype 'F64' not allowed"),
        "object dtype": (safetensors_bytes({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"x"),
                         "not allowed"),
        "10^12 elements": (safetensors_bytes({"w": {"dtype": "F32", "shape": [10 ** 6, 10 ** 6],
                                                    "data_offsets": [0, 16]}}, bytes(16)), "4,000,000,000,000"),
        "negative shape": (safetensors_bytes({"w": {"dtype": "F32", "shape": [-1],
                                                    "data_offsets": [0, 4]}}, bytes(4)), "non-negative"),
        "overlapping": (safetensors_bytes({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                           "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(8)),
                        "contiguous"),
        "trailing bytes": (good + b"\0" * 8, "bytes after the last tensor"),
        "a path as tensor name": (safetensors_bytes({"../x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                                    bytes(4)), "tensor name"),
    }
    for case, (data, word) in cases.items():
        msg = refused_on_import(repack(tmp_path / f"{case}.zip", {**members, name: data}), tmp_path / case, word)
        assert name in msg, msg


def test_an_oversized_weights_file_is_refused_from_the_directory(trained, bundle_path, tmp_path):
    members = members_of(bundle_path)
    name = next(n for n in members if n.startswith(f"weights/{trained.keys[UNET]}/"))
    big = safetensors_bytes({"w": {"dtype": "F32", "shape": [2 ** 22 + 1], "data_offsets": [0, 4 * (2 ** 22 + 1)]}},
                            bytes(4 * (2 ** 22 + 1)))
    refused_on_import(repack(tmp_path / "big.zip", {**members, name: big}), tmp_path, "at most 16,777,216")


def test_a_failed_import_leaves_no_weights_behind(bundle_path, tmp_path, monkeypatch):
    store = RunStore(tmp_path / "s")

    def broken(*args, **kwargs):
        assert any((store.root / "weights").iterdir())        # the weights were written before publishing
        raise OSError("disk full")
    monkeypatch.setattr(store, "_publish", broken)
    with pytest.raises(OSError):
        import_bundle(store, bundle_path)
    assert store.runs().empty and not any((store.root / "weights").iterdir())


def test_bundles_without_weights_stay_valid(trained, bundle_path, tmp_path):
    members = {n: b for n, b in members_of(bundle_path).items() if not n.startswith("weights/")}
    old = repack(tmp_path / "old.zip", members)
    assert read_bundle(old).weights == {}
    dst = RunStore(tmp_path / "dst")
    assert len(import_bundle(dst, old)) == 2
    assert all(dst.weight_epochs(k) == [] for k in trained.keys.values())


# -- check_file by hand ----------------------------------------------------------------------------------------
def test_check_file_reads_a_hand_made_file():
    data = safetensors_bytes({"__metadata__": {"format": "pt"},
                              "b": {"dtype": "I64", "shape": [], "data_offsets": [8, 8 + 8]},
                              "a": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]},
                              "z": {"dtype": "BF16", "shape": [0], "data_offsets": [16, 16]}}, bytes(16))
    assert weights.check_file(data, 1000) == {"b": ("I64", []), "a": ("F16", [2, 2]), "z": ("BF16", [0])}
    with pytest.raises(weights.WeightsError, match="at most 10"):
        weights.check_file(data, 10)


def test_save_writes_atomically_and_round_trips(tmp_path):
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": torch.tensor(7)}
    path = weights.save(state, tmp_path / "epoch-5.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-5.safetensors"]      # no temp file left
    assert weights.check_file(path.read_bytes(), 1000) == {"n": ("I64", []), "w": ("F32", [2, 3])}
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.zeros(2, 3))
    model.register_buffer("n", torch.tensor(0))
    weights.load_into(model, path)
    assert torch.equal(model.w.data, state["w"]) and int(model.n) == 7
    assert weights.epoch_of("epoch-5.safetensors") == 5 and weights.epoch_of("epoch-05.safetensors") is None


def test_export_leaves_weights_out_only_when_they_exceed_the_caps(trained, tmp_path, monkeypatch):
    from adlapp import bundle as bundle_mod

    plain = export_store(trained.store, tmp_path / "plain.zip", weights=False)
    assert read_bundle(plain).weights == {}
    monkeypatch.setattr(bundle_mod, "MAX_WEIGHT_FILES", 3)           # 4 files: more than the cap
    with pytest.raises(BundleError, match="at most 3"):
        export_store(trained.store, tmp_path / "forced.zip", weights=True)
    auto = read_bundle(export_store(trained.store, tmp_path / "auto.zip"))
    assert auto.weights == {} and "left out" in auto.manifest["provenance"]["weights"]
