"""Every notebook runs headlessly with papermill.

The notebooks are committed executed (`make notebooks`), with outputs and widget state. nbval
re-runs the committed data notebooks (01, 02, synthetic corpus) and checks that every output not
marked `nbval-ignore-output` comes out as stored, after `tests/nbval_sanitize.cfg` masks timings;
on EmoDB (when it is beside the repository) they run with papermill and nbval compares a re-run. The training
notebooks (03-05) run in sequence on a tiny corpus with quick settings, sharing one runs folder
as they do for a user: 03 trains the method, 04 reuses it and adds the no-correction run, 05
reuses both and adds the other two loss settings. Notebook 07 (pretraining) runs on the tiny corpus
with one fold. Notebook 08 (annotators) reads CREMA-D's ratings when they are beside the repository
and plans the synthetic corpus's labels; it runs on its defaults, and again without CREMA-D."""

import json
import subprocess
import sys

import papermill
import pytest

from conftest import CREMAD_ROOT, EMODB_ROOT, ROOT, needs_emodb

NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ["01_data_partitioning", "02_feature_visualization"]
SANITIZER = ROOT / "tests" / "nbval_sanitize.cfg"


def nbval(path, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "--nbval-sanitize-with",
                           str(SANITIZER), "-p", "no:cacheprovider", "-q", str(path)],
                          cwd=cwd, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_committed_notebook_reproduces_its_outputs(notebook, tmp_path):
    path = NOTEBOOK_DIR / f"{notebook}.ipynb"
    cells = json.loads(path.read_text())["cells"]
    assert any(cell.get("outputs") for cell in cells), f"{path} is committed without outputs: run `make notebooks`"
    result = nbval(path, tmp_path)
    assert result.returncode == 0, f"nbval: {path}'s stored outputs differ from a re-run:\n{result.stdout[-6000:]}"


def test_every_notebook_is_committed_executed():
    for path in sorted(NOTEBOOK_DIR.glob("0*.ipynb")):
        notebook = json.loads(path.read_text())
        assert any(cell.get("outputs") for cell in notebook["cells"]), f"{path.name}: run `make notebooks`"


@needs_emodb
@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_data_notebook_on_emodb_executes_and_validates(notebook, tmp_path):
    executed = tmp_path / f"{notebook}-emodb.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / f"{notebook}.ipynb"), str(executed), kernel_name="python3",
        parameters={"corpus": "emodb", "root": str(EMODB_ROOT), "data_dir": str(tmp_path / "emodb")},
        cwd=str(NOTEBOOK_DIR), progress_bar=False,
    )
    result = nbval(executed, tmp_path)
    assert result.returncode == 0, f"nbval found differing outputs in {executed}:\n{result.stdout[-6000:]}"


TRAINING_NOTEBOOKS = ["03_training", "04_label_drift", "05_tsne_analysis"]


@pytest.mark.slow
def test_training_notebooks_execute_in_sequence(tiny_corpus, tmp_path, quick):
    overrides = {**quick, "train.stage1_max_epochs": 1, "train.max_epochs": 2}
    parameters = {"corpus": str(tiny_corpus), "runs_dir": str(tmp_path / "runs"), "num_folds": 1,
                  "overrides": overrides}
    for notebook in TRAINING_NOTEBOOKS:
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / f"{notebook}.ipynb"), str(tmp_path / f"{notebook}.ipynb"), kernel_name="python3",
            parameters=parameters, cwd=str(NOTEBOOK_DIR), progress_bar=False,
        )
    for notebook in TRAINING_NOTEBOOKS:  # figures are shown as images, not as a Figure's text repr
        outputs = [o for cell in json.loads((tmp_path / f"{notebook}.ipynb").read_text())["cells"]
                   for o in cell.get("outputs", [])]
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{notebook} shows no figure"
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["cor-cor", "ic-ic", "paper", "soft-static"]
    for run in runs:
        assert (tmp_path / "runs" / run / "results.json").exists()


@pytest.mark.slow
def test_pretraining_notebook_executes(tiny_corpus, tmp_path, quick):
    """Notebook 07 on the tiny corpus, one fold: it loads the shipped encoder, probes both encoders and
    trains the temporal-only and full variants with each, then draws its t-SNE and learning curves."""
    overrides = {**quick, "train.stage1_max_epochs": 1, "train.max_epochs": 2}
    parameters = {"corpus": str(tiny_corpus), "runs_dir": str(tmp_path / "runs"), "num_folds": 1,
                  "overrides": overrides, "variants": ["temporal", "full"]}
    executed = tmp_path / "07_pretraining.ipynb"
    papermill.execute_notebook(str(NOTEBOOK_DIR / "07_pretraining.ipynb"), str(executed), kernel_name="python3",
                               parameters=parameters, cwd=str(NOTEBOOK_DIR), progress_bar=False)
    outputs = [o for cell in json.loads(executed.read_text())["cells"] for o in cell.get("outputs", [])]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # curves, t-SNE, learning curves
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "pretrained-full", "pretrained-temporal", "random-full", "random-temporal"]


def execute_annotators_notebook(executed, **parameters) -> tuple[int, str]:
    """Notebook 08 run with papermill: the number of figures it shows and the text it prints."""
    papermill.execute_notebook(str(NOTEBOOK_DIR / "08_annotators.ipynb"), str(executed), kernel_name="python3",
                               parameters=parameters, cwd=str(NOTEBOOK_DIR), progress_bar=False)
    outputs = [o for cell in json.loads(executed.read_text())["cells"] for o in cell.get("outputs", [])]
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    return figures, "".join("".join(o.get("text", "")) for o in outputs)


@pytest.mark.slow
def test_annotators_notebook_executes(tmp_path):
    """Notebook 08 on its defaults: CREMA-D's agreement, intended against perceived emotion and the
    ambiguous shares when the ratings are beside the repository, then the synthetic testbed's
    confusion matrices and divergences to the truth. No audio, no training."""
    figures, text = execute_annotators_notebook(tmp_path / "08_annotators.ipynb")
    if (CREMAD_ROOT / "tabulatedVotes.csv").exists():
        assert figures >= 5 and "7442 clips of 91 actors" in text
    else:
        assert figures >= 2 and "CREMA-D is absent" in text
    assert "113 of them ambiguous" in text  # the small corpus of seed 0 with annotator confusion 0.4


@pytest.mark.slow
def test_annotators_notebook_without_cremad_says_so(tmp_path):
    figures, text = execute_annotators_notebook(tmp_path / "08_annotators.ipynb",
                                                cremad_root=str(tmp_path / "no-crema-d"))
    assert "CREMA-D is absent" in text and "the CREMA-D cells are skipped" in text
    assert figures == 2  # the synthetic testbed's: confusion matrices, divergences to the truth
