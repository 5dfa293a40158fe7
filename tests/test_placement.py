"""Where sweep trials run, tested without a GPU: Ray started with a declared GPU resource grants
GPU ids and sets CUDA_VISIBLE_DEVICES; a trial follows what it was granted and fails, saying so,
when it was granted a GPU that torch cannot see."""

import pytest
import yaml

from ser_lib.config import load_config
from ser_lib.errors import SerError
from ser_lib.experiments.placement import gpus_per_trial, granted_gpus, trial_device
from ser_lib.experiments.sweep import run_sweep

pytestmark = pytest.mark.ray  # starts Ray clusters: `make test` runs these files on one worker


@pytest.fixture(scope="module")
def ray_with_a_declared_gpu():
    """A private Ray instance that believes it has one GPU (Ray does not check the hardware)."""
    import ray

    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


def test_a_task_granted_a_gpu_share_gets_an_id_and_cuda_visible_devices(ray_with_a_declared_gpu):
    ray = ray_with_a_declared_gpu
    shared = ray.remote(num_gpus=0.5, num_cpus=0)(granted_gpus)
    none = ray.remote(num_gpus=0, num_cpus=0)(granted_gpus)
    assert ray.get(shared.remote()) == (["0"], "0")
    ids, visible = ray.get(none.remote())
    assert ids == [] and visible != "0"  # empty or unset by Ray version: a trial must not guess its device


def test_a_sweep_on_a_gpu_cluster_fails_clearly_when_torch_sees_no_cuda(ray_with_a_declared_gpu, tiny_corpus,
                                                                        tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"name": "gpu", "profile": "demo", "methods": ["paper"], "folds": 1,
                                    "set": {"model.encoder": "tiny", "cache_dir": str(tmp_path / "cache")}}))
    outcome = run_sweep(grid, tiny_corpus, tmp_path / "out", progress=False)  # gpus: automatic
    (failure,) = outcome.failed
    assert "Ray granted this trial GPU ['0']" in failure["error"] and "sees no CUDA" in failure["error"]


def test_the_device_follows_the_grant():
    assert trial_device("auto", [], "n1") == "cpu"
    assert trial_device("cpu", [], "n1") == "cpu"
    with pytest.raises(SerError, match="runtime.device=cuda but Ray granted this trial no GPU on node n1"):
        trial_device("cuda", [], "n1")


def test_a_granted_gpu_is_used_when_torch_sees_it(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert trial_device("auto", ["0"], "n1") == "cuda"
    assert trial_device("cuda:1", ["0"], "n1") == "cuda"  # Ray's CUDA_VISIBLE_DEVICES renumbers from 0
    assert trial_device("cpu", ["0"], "n1") == "cpu"


def test_automatic_gpu_shares():
    tiny, base = load_config("demo", overrides=["model.encoder=tiny"]), load_config("paper")
    svm = load_config("demo", overrides=["train.trainer=smile-svm"])
    assert [gpus_per_trial(c, None, 0.0) for c in (tiny, base, svm)] == [0.0, 0.0, 0.0]
    assert [gpus_per_trial(c, None, 2.0) for c in (tiny, base, svm)] == [0.25, 1.0, 0.0]
    assert gpus_per_trial(base, 0.5, 2.0) == 0.5
    with pytest.raises(SerError, match="the Ray cluster has no GPU"):
        gpus_per_trial(base, 0.5, 0.0)
    with pytest.raises(SerError, match="must be a share"):
        gpus_per_trial(base, 1.5, 2.0)
