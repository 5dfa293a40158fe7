"""The per-epoch store of corrected labels."""

import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from ser_lib.analysis.divergence import js_divergence
from ser_lib.errors import SerError
from ser_lib.method.label_store import LabelStore

CLASSES = ("anger", "happiness", "sadness", "neutral")
Y_S = {"a": [0.5, 0.5, 0.0, 0.0], "b": [0.25, 0.25, 0.25, 0.25], "c": [0.0, 0.0, 1.0, 0.0]}


def batch(ids):
    return torch.tensor([Y_S[i] for i in ids])


def filled_store() -> LabelStore:
    """Two epochs; "a" seen twice in epoch 0, "b" only in epoch 1, "c" masked out (clear)."""
    store = LabelStore(CLASSES)
    store.register(["a", "b"], batch(["a", "b"]), subset="train", true=[[0.6, 0.4, 0, 0], [0.1, 0.2, 0.3, 0.4]])
    store.record(
        0, ["a", "c"], batch(["a", "c"]),
        torch.tensor([[0.4, 0.4, 0.1, 0.1], [0, 0, 1, 0]]),
        torch.tensor([[0.1, 0.1, 0.4, 0.4], [0, 0, 1, 0]]),
        mask=torch.tensor([True, False]),
    )
    store.record(0, ["a"], batch(["a"]), torch.tensor([[0.6, 0.2, 0.1, 0.1]]), torch.tensor([[0.3, 0.3, 0.2, 0.2]]))
    store.record(1, ["a", "b"], batch(["a", "b"]), torch.tensor([[0.7, 0.3, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]]))
    return store


def test_per_epoch_averaging_and_history():
    store = filled_store()
    assert store.epochs == [0, 1]
    assert store.ids == ["a", "b"] and "c" not in store and len(store) == 2
    np.testing.assert_allclose(store.history("a"), [[0.5, 0.3, 0.1, 0.1], [0.7, 0.3, 0.0, 0.0]], atol=1e-7)
    predicted = store.history("a", kind="predicted")
    np.testing.assert_allclose(predicted[0], [0.2, 0.2, 0.3, 0.3], atol=1e-7)
    assert np.isnan(predicted[1]).all()  # no predictions recorded in epoch 1
    history_b = store.history("b")
    assert np.isnan(history_b[0]).all()  # not seen in epoch 0
    np.testing.assert_allclose(history_b[1], [0.1, 0.2, 0.3, 0.4], atol=1e-7)
    np.testing.assert_allclose(store.observed("a"), Y_S["a"])


def test_final_drift_and_long_table():
    store = filled_store()
    final = store.final()
    assert list(final.index) == ["a", "b"] and list(final.columns) == list(CLASSES)
    np.testing.assert_allclose(final.loc["a"], [0.7, 0.3, 0.0, 0.0], atol=1e-7)
    assert store.drift("a", "l1") == pytest.approx(0.4, abs=1e-6)
    assert store.drift("a") == pytest.approx(js_divergence(Y_S["a"], [0.7, 0.3, 0.0, 0.0]), abs=1e-6)
    drifts = store.drifts("l1")
    assert drifts.loc["a"] == pytest.approx(0.4, abs=1e-6)
    assert drifts.loc["b"] == pytest.approx(0.4, abs=1e-6)  # |0.15|+|0.05|+|0.05|+|0.15|

    table = store.to_dataframe()
    assert list(table.columns) == ["id", "subset", "epoch", "kind", "class", "value"]
    counts = table.groupby("kind").size().to_dict()
    # observed: 2 ids; true: 2 ids; corrected: a@0, a@1, b@1; predicted: a@0 only.
    assert counts == {"observed": 8, "true": 8, "corrected": 12, "predicted": 4}
    assert table.loc[table.kind == "observed", "epoch"].isna().all()
    row = table[(table.id == "a") & (table.epoch == 0) & (table.kind == "corrected") & (table["class"] == "anger")]
    assert row.value.item() == pytest.approx(0.5) and row.subset.item() == "train"


def test_record_rejects_inconsistent_input():
    store = filled_store()
    with pytest.raises(ValueError, match="'a'.*sharing one id"):
        store.record(2, ["a"], batch(["b"]), batch(["b"]))
    with pytest.raises(ValueError, match="'new'.*sharing one id"):  # a clash inside one batch
        store.record(2, ["b", "new", "new"], batch(["b", "a", "c"]), batch(["b", "a", "c"]))
    assert store.epochs == [0, 1] and "new" not in store  # the rejected batches left no trace
    with pytest.raises(ValueError, match=r"non-finite corrected labels for samples \['b'\]"):
        store.record(2, ["b"], batch(["b"]), torch.full((1, 4), float("nan")))
    with pytest.raises(ValueError, match=r"shape \[2, 4\]"):
        store.record(2, ["a", "b"], batch(["a"]), batch(["a"]))
    with pytest.raises(ValueError, match="epoch"):
        store.record(-1, ["a"], batch(["a"]), batch(["a"]))
    with pytest.raises(ValueError, match="strings"):
        store.record(2, [7], batch(["a"]), batch(["a"]))
    with pytest.raises(KeyError, match="'zzz'"):
        store.history("zzz")


def assert_same(a: LabelStore, b: LabelStore):
    assert a.classes == b.classes and a.ids == b.ids and a.epochs == b.epochs
    pd.testing.assert_frame_equal(a.to_dataframe(), b.to_dataframe())
    for sample_id in a.ids:
        np.testing.assert_array_equal(a.history(sample_id), b.history(sample_id))
        np.testing.assert_array_equal(a.history(sample_id, "predicted"), b.history(sample_id, "predicted"))


def test_save_load_roundtrip_without_pickle(tmp_path):
    store = filled_store()
    path = tmp_path / "labels.npz"
    store.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.npz"]  # exact name, no temp left
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[key].dtype != object for key in archive.files)
    assert_same(store, LabelStore.load(path))


def test_state_dict_survives_torch_weights_only_load(tmp_path):
    store = filled_store()
    torch.save({"model": {}, "label_store": store.state_dict()}, tmp_path / "ckpt.pt")
    checkpoint = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    restored = LabelStore.from_state_dict(checkpoint["label_store"])
    assert_same(store, restored)
    # Sums, not means, are stored: a store restored mid-epoch keeps averaging correctly.
    for s in (store, restored):
        s.record(1, ["a"], batch(["a"]), torch.tensor([[0.1, 0.5, 0.2, 0.2]]))
    assert_same(store, restored)
    np.testing.assert_allclose(restored.history("a")[1], [0.4, 0.4, 0.1, 0.1], atol=1e-7)


def test_empty_store_roundtrip(tmp_path):
    store = LabelStore(CLASSES)
    store.save(tmp_path / "empty.npz")
    restored = LabelStore.load(tmp_path / "empty.npz")
    assert restored.ids == [] and restored.epochs == [] and restored.final().empty and restored.drifts().empty


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(SerError, match="missing.npz does not exist"):
        LabelStore.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SerError, match="junk.npz"):
        LabelStore.load(tmp_path / "junk.npz")
    with zipfile.ZipFile(tmp_path / "other.npz", "w"):
        pass
    with pytest.raises(SerError, match="other.npz.*missing"):
        LabelStore.load(tmp_path / "other.npz")
    state = filled_store().state_dict()
    with pytest.raises(SerError, match="classes"):
        LabelStore(("x", "y", "z", "w")).load_state_dict(state)
    state["rec_row"] = state["rec_row"] + 10
    with pytest.raises(SerError, match="unknown ids"):
        LabelStore.from_state_dict(state)


def test_an_all_masked_batch_records_nothing():
    store = LabelStore(CLASSES)
    store.record(0, ["c"], batch(["c"]), batch(["c"]), mask=torch.tensor([False]))
    assert store.epochs == [] and store.ids == []


def test_divergence_to_truth_per_epoch():
    store = LabelStore(["a", "b"])
    store.register(["x", "y"], [[0.5, 0.5], [1.0, 0.0]], subset="ambiguous", true=[[1.0, 0.0], [1.0, 0.0]])
    store.record(0, ["x", "y"], [[0.5, 0.5], [1.0, 0.0]], [[0.75, 0.25], [1.0, 0.0]])
    store.record(1, ["x"], [[0.5, 0.5]], [[1.0, 0.0]])
    table = store.divergence_to_truth()
    assert table["epoch"].tolist() == [-1, 0, 1]
    assert table["samples"].tolist() == [2, 2, 1]
    js_half = float(js_divergence(np.array([0.5, 0.5]), np.array([1.0, 0.0])))
    np.testing.assert_allclose(table["js_to_true"], [js_half / 2, float(js_divergence(
        np.array([0.75, 0.25]), np.array([1.0, 0.0]))) / 2, 0.0], atol=1e-12)
    np.testing.assert_allclose(store.true("x"), [1.0, 0.0])
    assert store.subset("y") == "ambiguous"
    assert LabelStore(["a", "b"]).divergence_to_truth().empty


def test_running_labels_are_the_previous_epochs_corrected_means():
    store = LabelStore(["a", "b"])
    store.register(["s1", "s2"], np.array([[0.5, 0.5], [0.6, 0.4]]))
    np.testing.assert_allclose(store.running(["s1", "s2"], 0), [[0.5, 0.5], [0.6, 0.4]])  # nothing before: y_s
    store.record(0, ["s1"], [[0.5, 0.5]], [[0.7, 0.3]])
    store.record(0, ["s1"], [[0.5, 0.5]], [[0.9, 0.1]])  # seen twice: the epoch's mean counts
    np.testing.assert_allclose(store.running(["s1", "s2"], 1), [[0.8, 0.2], [0.6, 0.4]])
    store.record(1, ["s1"], [[0.5, 0.5]], [[0.1, 0.9]])
    np.testing.assert_allclose(store.running(["s1"], 1), [[0.8, 0.2]])  # epoch 1's own records do not count
    np.testing.assert_allclose(store.running(["s1"], 3), [[0.1, 0.9]])  # the latest earlier epoch
