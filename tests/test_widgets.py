"""The label-drift explorer driven from Python on a hand-written run folder (no training)."""

import base64
import io
import shutil

import ipywidgets
import numpy as np
import pandas as pd
import pytest
import soundfile

from ser_lib.config import load_config
from ser_lib.errors import SerError
from ser_lib.analysis.drift import drift_curves, label_drift_curve
from ser_lib.analysis.plots import plot_drift_comparison
from ser_lib.analysis import runs
from ser_lib.analysis.widgets import LabelDriftExplorer
from ser_lib.method.label_store import LabelStore

CLASSES = ("anger", "happiness", "sadness", "neutral")
RATE = 16000
# y_s per sample; u2 is 8 s long, so it has two 4 s segments (data.max_segment_s = 7).
OBSERVED = {
    "u1#0": [0.5, 0.5, 0.0, 0.0],
    "u2#0": [0.0, 0.4, 0.6, 0.0],
    "u2#1": [0.0, 0.4, 0.6, 0.0],
    "u3#0": [0.25, 0.25, 0.25, 0.25],
}
TRUE = {"u1#0": [0.7, 0.3, 0.0, 0.0], "u2#0": [0.0, 0.2, 0.8, 0.0], "u2#1": [0.0, 0.2, 0.8, 0.0],
        "u3#0": [0.1, 0.1, 0.1, 0.7]}


def corrected(sample_id, epoch, alpha=0.5):
    """A made-up y_c moving from y_s towards the truth, and y_g = the truth shifted by epoch."""
    y_s, truth = np.array(OBSERVED[sample_id]), np.array(TRUE[sample_id])
    y_g = (truth + 0.1 * epoch) / (truth + 0.1 * epoch).sum()
    return (1 - alpha) * y_s + alpha * y_g, y_g


def write_store(path, ids, epochs, true=True):
    store = LabelStore(CLASSES)
    y_s = np.array([OBSERVED[i] for i in ids])
    store.register(ids, y_s, subset="ambiguous", true=np.array([TRUE[i] for i in ids]) if true else None)
    for epoch in range(epochs):
        rows = [corrected(i, epoch) for i in ids]
        store.record(epoch, ids, y_s, np.array([c for c, _ in rows]), np.array([g for _, g in rows]))
        if epoch == 1 and "u1#0" in ids:  # u1#0 seen twice in epoch 1: the store keeps the mean
            store.record(1, ["u1#0"], y_s[:1], [[1.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0, 1.0]])
    path.parent.mkdir(parents=True, exist_ok=True)
    store.save(path)
    (path.parent / "fold_result.json").write_text("{}")  # marks the fold finished (analysis.runs.fold_dirs)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A corpus of three utterances (one 8 s long) and a run with folds S1 (3 epochs) and S2 (2)."""
    root = tmp_path_factory.mktemp("widgets")
    corpus = root / "corpus"
    (corpus / "wav").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for utt_id, seconds, speaker in (("u1", 1.0, "S2"), ("u2", 8.0, "S3"), ("u3", 2.0, "S3")):
        wave = (0.3 * rng.uniform(-1, 1, int(RATE * seconds))).astype(np.float32)
        soundfile.write(corpus / "wav" / f"{utt_id}.wav", wave, RATE, subtype="PCM_16")
        rows.append({"utt_id": utt_id, "path": f"wav/{utt_id}.wav", "speaker": speaker, "votes_anger": 1,
                     "votes_happiness": 1, "votes_sadness": 0, "votes_neutral": 0, "votes_other": 0})
    pd.DataFrame(rows).to_csv(corpus / "manifest.csv", index=False)

    run_dir = root / "run"
    write_store(run_dir / "fold-S1" / "label_history.npz", list(OBSERVED), epochs=3)
    write_store(run_dir / "fold-S2" / "label_history.npz", ["u2#0", "u2#1", "u3#0"], epochs=2)
    (run_dir / "config.json").write_text(load_config("demo").to_json())
    return run_dir, corpus / "manifest.csv"


@pytest.fixture
def explorer(run):
    run_dir, manifest = run
    return LabelDriftExplorer.from_run(run_dir, manifest)


def test_folds_and_epoch_slider_follow_the_stores(explorer):
    assert explorer.folds == ["S1", "S2"] and explorer.fold == "S1"
    slider = explorer.epoch_slider
    assert (slider.min, slider.max) == (0, 2) and explorer.epochs == [0, 1, 2]
    assert explorer.epoch == 2  # the last epoch: the final corrected label
    explorer.fold_dropdown.value = "S2"  # the user picks a fold
    assert explorer.fold == "S2" and (slider.min, slider.max) == (0, 1) and explorer.epoch == 1
    assert "u1#0" not in explorer.options  # u1 is S2's own test speaker's utterance
    assert explorer.folds_of("u2#1") == ["S1", "S2"]
    assert isinstance(explorer.widget, ipywidgets.VBox)


def test_filters_reduce_and_order_the_options(explorer):
    table = explorer.table()
    assert sorted(explorer.options) == sorted(OBSERVED)
    assert explorer.options == table.sort_values("drift", ascending=False)["id"].tolist()  # largest drift first
    assert explorer.set_filter(cls="sadness") == ["u2#0", "u2#1"]  # argmax of y_s
    assert [label for label, _ in explorer.sample_dropdown.options][0].startswith("u2#0  (sadness, drift ")
    assert explorer.sample_id in ("u2#0", "u2#1")
    threshold = table["drift"].median()
    high = explorer.set_filter(min_drift=threshold, order="id")
    assert high == sorted(table.loc[table["drift"] >= threshold, "id"]) and 0 < len(high) < 4
    explorer.set_filter()
    explorer.order_toggle.value = "id"  # the controls drive the same filter
    explorer.class_dropdown.value = "anger"  # u3's y_s is uniform: a tie goes to the first class
    assert explorer.options == ["u1#0", "u3#0"] and explorer.sample_dropdown.value == "u1#0"
    explorer.class_dropdown.value = "neutral"
    assert explorer.options == [] and explorer.sample_id is None
    assert "none of its 4 samples matches" in explorer.info.value
    with pytest.raises(SerError, match="no sample selected"):
        explorer.current_bars()


def test_bars_equal_the_stored_numbers(explorer):
    explorer.select("u2#1")
    explorer.set_epoch(1)
    assert explorer.epoch_slider.value == 1
    bars = explorer.current_bars()
    y_c, y_g = corrected("u2#1", 1)
    assert list(bars) == ["observed", "corrected", "predicted", "true"]
    np.testing.assert_allclose(bars["observed"], OBSERVED["u2#1"])
    np.testing.assert_allclose(bars["corrected"], y_c)
    np.testing.assert_allclose(bars["predicted"], y_g)
    np.testing.assert_allclose(bars["true"], TRUE["u2#1"])

    explorer.sample_dropdown.value = "u1#0"  # the user picks a sample; epoch 1 saw it twice
    explorer.epoch_slider.value = 1
    y_c, y_g = corrected("u1#0", 1)
    np.testing.assert_allclose(explorer.current_bars()["corrected"], (y_c + [1, 0, 0, 0]) / 2)
    np.testing.assert_allclose(explorer.current_bars()["predicted"], (y_g + [0, 0, 0, 1]) / 2)
    assert explorer.bars_output.outputs[0]["data"]["image/png"]
    assert len(explorer.bar_figure().axes) == 2  # a Figure for display() in a notebook


def test_audio_is_the_segment_as_a_wav(explorer, run):
    explorer.select("u2#1")
    audio, rate = soundfile.read(io.BytesIO(explorer.audio.value), dtype="float32")
    original, _ = soundfile.read(run[1].parent / "wav" / "u2.wav", dtype="float32")
    assert rate == RATE and len(audio) == 4 * RATE  # the second of two equal 4 s segments
    np.testing.assert_allclose(audio, original[4 * RATE:], atol=1 / 32768)
    png = base64.b64decode(explorer.spectrogram_output.outputs[0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG") and explorer.audio_error is None


def test_bad_requests_say_what_is_wrong(explorer, run, tmp_path):
    with pytest.raises(SerError, match=r"'nope#0' is not in fold S1.*no fold of this run"):
        explorer.select("nope#0")
    explorer.select_fold("S2")
    with pytest.raises(SerError, match=r"'u1#0' is not in fold S2.*fold\(s\) \['S1'\]"):
        explorer.select("u1#0")
    with pytest.raises(SerError, match="no epoch 2; its label store holds epochs 0..1"):
        explorer.set_epoch(2)
    explorer.set_filter(cls="neutral")
    with pytest.raises(SerError, match="hidden by the current filter"):
        explorer.select("u2#0")
    with pytest.raises(SerError, match="unknown class 'joy'"):
        explorer.set_filter(cls="joy")
    with pytest.raises(SerError, match="no fold 'S9'"):
        explorer.select_fold("S9")
    with pytest.raises(SerError, match="has no fold-\\*/label_history.npz"):
        LabelDriftExplorer.from_run(tmp_path)


def test_missing_audio_is_reported_in_the_widget(run):
    run_dir, manifest = run
    frame = pd.read_csv(manifest)
    frame.attrs["root"] = str(manifest.parent)
    lost = LabelDriftExplorer.from_run(run_dir, frame[frame["utt_id"] != "u2"])
    lost.select("u2#0")
    assert lost.audio.value == b"" and "'u2' of sample 'u2#0' is not in the manifest" in lost.audio_error
    assert "no audio" in lost.spectrogram_output.outputs[0]["text"]
    assert "no manifest given" in LabelDriftExplorer.from_run(run_dir).audio_error


def test_a_fold_without_ambiguous_samples(tmp_path):
    empty = LabelStore(CLASSES)  # EmoDB: no ambiguous training samples, so nothing recorded
    explorer = LabelDriftExplorer({"03": empty})
    assert explorer.options == [] and explorer.epochs == [] and explorer.epoch_slider.disabled
    assert "no ambiguous training samples" in explorer.info.value
    assert len(explorer.table()) == 0


def test_drift_comparison_plots_both_runs(run, tmp_path):
    run_dir, _ = run
    other = tmp_path / "other"
    write_store(other / "fold-S1" / "label_history.npz", ["u1#0", "u3#0"], epochs=2)
    figure = plot_drift_comparison(*drift_curves({"a": run_dir, "b": other}))
    left, right = figure.axes
    for line, name in zip(left.get_lines(), ("a", "b")):
        expected = label_drift_curve(run_dir if name == "a" else other)
        np.testing.assert_allclose(np.column_stack(line.get_data()), expected)
    assert [line.get_label() for line in right.get_lines()] == ["a", "b"]
    np.testing.assert_allclose(np.column_stack(right.get_lines()[0].get_data()), label_drift_curve(run_dir, "predicted"))
    no_truth = tmp_path / "no_truth"
    write_store(no_truth / "fold-S1" / "label_history.npz", ["u1#0"], epochs=2, true=False)
    assert drift_curves({"c": no_truth}) is None


def test_figures_render_on_a_widget_callback_thread(explorer):
    """ipykernel runs widget callbacks on subshell threads; figures must not depend on pyplot's state."""
    import threading

    import matplotlib.image

    images = []

    def switch_fold_and_draw():
        explorer.fold_dropdown.value = "S2"
        images.append(base64.b64decode(explorer.bars_output.outputs[0]["data"]["image/png"]))

    thread = threading.Thread(target=switch_fold_and_draw)
    thread.start()
    thread.join()
    pixels = matplotlib.image.imread(io.BytesIO(images[0]), format="png")
    assert explorer.fold == "S2" and pixels.std() > 0.05  # bars and text, not a blank canvas


def test_the_explorer_finds_the_audio_through_the_manifest_the_run_recorded(run, tmp_path):
    run_dir, manifest = run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    runs.record_manifest(copy, manifest)  # what run_loso and ser sweep write
    explorer = LabelDriftExplorer.from_run(copy)
    assert explorer.audio_error is None
    assert soundfile.read(io.BytesIO(explorer.wav_bytes()))[0].size > 0
    moved = tmp_path / "moved.csv"
    manifest.rename(moved)  # a corpus that has moved is not guessed at: the explorer says what it lacks
    try:
        assert runs.recorded_manifest(copy) is None
        assert "none recorded in the run folder" in LabelDriftExplorer.from_run(copy).audio_error
    finally:
        moved.rename(manifest)
