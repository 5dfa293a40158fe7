"""Every notebook runs headlessly with papermill on the synthetic corpus (and on EmoDB when it
is beside the repository), then nbval re-executes the result and checks that every output
not marked `nbval-ignore-output` comes out the same: the notebooks are deterministic."""

import subprocess
import sys
from pathlib import Path

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
