"""Every notebook runs headlessly with papermill.

The data notebooks (01, 02) run on the synthetic corpus and on EmoDB when it is beside the
repository; nbval then re-executes each result and checks that every output not marked
`nbval-ignore-output` comes out the same: the notebooks are deterministic. The training
notebooks (03-05) run in sequence on a tiny corpus with quick settings, sharing one runs folder
as they do for a user: 03 trains the method, 04 reuses it and adds the no-correction run, 05
reuses both and adds the other two loss settings."""

import json
import subprocess
import sys

import papermill
import pytest

from conftest import EMODB_ROOT, ROOT, needs_emodb

NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ["01_data_partitioning", "02_feature_visualization"]
CORPORA = ["synthetic", pytest.param("emodb", marks=needs_emodb)]


@pytest.mark.slow
@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_executes_and_validates(notebook, corpus, synth_small, tmp_path):
    data_dir = synth_small.parent if corpus == "synthetic" else tmp_path / "emodb"
    executed = tmp_path / f"{notebook}-{corpus}.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / f"{notebook}.ipynb"), str(executed), kernel_name="python3",
        parameters={"corpus": corpus, "root": str(EMODB_ROOT), "data_dir": str(data_dir)},
        cwd=str(NOTEBOOK_DIR), progress_bar=False,
    )
    nbval = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
         "-q", str(executed)], cwd=tmp_path, capture_output=True, text=True)
    assert nbval.returncode == 0, f"nbval found differing outputs in {executed}:\n{nbval.stdout[-6000:]}"


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
