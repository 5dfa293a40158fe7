"""Autocast precision and fp16 loss scaling: what `runtime.precision` picks per device, the loss
scaler's steps and skips in `stage.optimizer_step`, and its state across a checkpoint and resume."""

import pytest
import torch
import torch.nn.functional as F

from ser_lib.config import RuntimeConfig, load_config
from ser_lib.data.samples import Sample
from ser_lib.errors import ConfigError
from ser_lib.runtime import autocast_dtype, grad_scaler, load_checkpoint, save_checkpoint
from ser_lib.train.fold_data import FoldData
from ser_lib.train.stage import StageRunner, optimizer_step

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


# ----------------------------------------------------------------------------- the choice


@pytest.fixture
def gpu(monkeypatch):
    """A pretend CUDA GPU of a given compute capability (no GPU is touched)."""
    def with_capability(major: int, minor: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
    return with_capability


@pytest.mark.parametrize("capability, dtype, scaled", [((7, 5), torch.float16, True),  # T4
                                                       ((7, 0), torch.float16, True),  # V100
                                                       ((8, 0), torch.bfloat16, False),  # A100
                                                       ((9, 0), torch.bfloat16, False)])  # H100
def test_auto_on_cuda_is_bf16_from_ampere_on_and_scaled_fp16_before(gpu, capability, dtype, scaled):
    gpu(*capability)
    assert autocast_dtype(CUDA, "auto") == dtype
    assert grad_scaler(CUDA, "auto").is_enabled() == scaled


@pytest.mark.parametrize("capability", [(7, 5), (8, 0)])
def test_explicit_precision_is_honoured_on_any_gpu(gpu, capability):
    gpu(*capability)
    assert autocast_dtype(CUDA, "fp32") is None and not grad_scaler(CUDA, "fp32").is_enabled()
    assert autocast_dtype(CUDA, "bf16") == torch.bfloat16 and not grad_scaler(CUDA, "bf16").is_enabled()
    assert autocast_dtype(CUDA, "fp16") == torch.float16 and grad_scaler(CUDA, "fp16").is_enabled()


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_on_cpu_still_follows_onednn_bf16(monkeypatch, native_bf16):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native_bf16)
    assert autocast_dtype(CPU, "auto") == (torch.bfloat16 if native_bf16 else None)
    assert not grad_scaler(CPU, "auto").is_enabled()
    assert autocast_dtype(CPU, "fp16") == torch.float16 and grad_scaler(CPU, "fp16").is_enabled()
    assert autocast_dtype(torch.device("mps"), "auto") is None


def test_fp16_is_a_valid_precision_and_others_are_not():
    RuntimeConfig(precision="fp16").validate()
    with pytest.raises(ConfigError, match="runtime.precision"):
        RuntimeConfig(precision="fp8").validate()


# ----------------------------------------------------------------------------- optimizer_step


def test_fp16_steps_with_the_scaler_lower_the_loss_and_grow_the_scale():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    x = torch.randn(32, 8)
    y = x @ torch.randn(8, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=16.0, growth_interval=5)  # doubles after 5 clean steps
    losses = []
    for _ in range(20):
        with torch.autocast("cpu", dtype=torch.float16):
            prediction = model(x)
        assert prediction.dtype == torch.float16
        loss = F.mse_loss(prediction.float(), y)
        assert optimizer_step(loss, model, optimizer, grad_clip=5.0, scaler=scaler)
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    assert scaler.get_scale() == 16.0 * 2**4


def test_an_overflowing_fp16_gradient_skips_the_step_and_halves_the_scale():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    x = torch.full((4, 8), 1000.0)  # scaled by 65536, the fp16 weight gradient overflows; the loss does not
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    scaler = grad_scaler(CPU, "fp16")
    before = [p.detach().clone() for p in model.parameters()]

    def step() -> tuple[bool, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.float16):
            loss = model(x).float().mean()
        return optimizer_step(loss, model, optimizer, grad_clip=1.0, scaler=scaler), loss

    taken, loss = step()
    assert torch.isfinite(loss) and not taken
    assert scaler.get_scale() == 32768.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    for _ in range(20):  # the scale backs off until the scaled gradient fits in fp16
        taken, loss = step()
        if taken:
            break
    assert taken and scaler.get_scale() * 1000 < 65504  # the weight gradient is scale * 1000
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_clipping_sees_the_unscaled_gradients():
    """A scaled step equals the unscaled one (scales are powers of two), clipping included: were
    the gradients clipped before unscaling, the update would be 65536 times too small."""
    def one_step(scaler) -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.randn(16, 8)
        loss = F.mse_loss(model(x), 100 * torch.ones(16, 1))  # gradient norm far above the clip
        optimizer_step(loss, model, optimizer, grad_clip=0.5, scaler=scaler)
        return model.weight.detach()

    torch.testing.assert_close(one_step(torch.amp.GradScaler("cpu")), one_step(None))


def test_a_disabled_scaler_is_the_plain_step_bit_for_bit():
    def one_step(plain: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 3)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        loss = F.cross_entropy(model(torch.randn(16, 8)), torch.arange(16) % 3)
        if plain:  # the step before loss scaling existed
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            optimizer.step()
        else:
            assert optimizer_step(loss, model, optimizer, 0.1, grad_scaler(CPU, "fp32"))
        return model.weight.detach()

    assert torch.equal(one_step(plain=True), one_step(plain=False))


# ----------------------------------------------------------------------------- checkpoint and resume

CLASSES = ("anger", "happiness", "sadness", "neutral")


class ToyModel(torch.nn.Module):
    """A linear classifier of the mean filterbank frame: a StageRunner model trained in milliseconds."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, len(CLASSES))

    def forward(self, batch: dict) -> dict:
        pooled = batch["fbank"].mean(1)
        return {"logits": self.linear(pooled), "embedding": pooled}


def toy_samples(count: int, level: float = 1.0) -> list[Sample]:
    generator = torch.Generator().manual_seed(count)
    samples = []
    for i in range(count):
        k = i % len(CLASSES)
        fbank = level * (torch.randn(6, 8, generator=generator) + torch.eye(len(CLASSES), 8)[k])
        samples.append(Sample(sample_id=f"u{i}#0", utt_id=f"u{i}", speaker="S1", session=None, subset="clear",
                              y_soft=torch.eye(len(CLASSES))[k], true=None, waveform=torch.zeros(400),
                              num_valid_samples=400, fbank=fbank, num_valid_frames=6))
    return samples


class Interrupt(Exception):
    pass


def stop_after_epoch_0(stage, epoch):
    if epoch == 0:
        raise Interrupt


def toy_runner(tmp_path, precision: str, level: float = 1.0, on_epoch_end=None) -> StageRunner:
    torch.manual_seed(0)
    config = load_config("demo", overrides={"runtime.precision": precision, "train.batch_size": 4,
                                            "train.patience": 10, "train.bucket_by_length": False})
    train = toy_samples(16, level)
    data = FoldData(train=train, validation=toy_samples(8, level), test=[], test_ambiguous=[], classes=CLASSES)
    return StageRunner("stage1", ToyModel(), data, train, config, CPU, tmp_path / "stage1.pt", max_epochs=2,
                       class_weights=torch.ones(len(CLASSES)), progress=False, on_epoch_end=on_epoch_end)


def test_the_checkpoint_holds_the_loss_scale_and_a_resume_restores_it(tmp_path):
    with pytest.raises(Interrupt):
        toy_runner(tmp_path, "fp16", on_epoch_end=stop_after_epoch_0).run(resume=False)
    snapshot = load_checkpoint(tmp_path / "stage1.pt")
    assert snapshot["scaler"]["scale"] == 65536.0 and snapshot["scaler"]["_growth_tracker"] == 4  # 4 batches
    assert snapshot["progress"]["history"][0]["skipped_steps"] == 0
    snapshot["scaler"]["scale"] = 1024.0  # a scale no fresh scaler has
    save_checkpoint(tmp_path / "stage1.pt", {k: v for k, v in snapshot.items() if k != "version"})

    resumed = toy_runner(tmp_path, "fp16")
    state = resumed.run(resume=True)
    assert [h["epoch"] for h in state.history] == [0, 1]
    assert resumed.scaler.get_scale() == 1024.0
    assert resumed.scaler.state_dict()["_growth_tracker"] == 8  # counted on from the checkpoint


@pytest.mark.parametrize("written_by", ["before fp16", "an fp32 run"])
def test_a_checkpoint_without_scaler_state_resumes_fp16_with_a_fresh_scaler(tmp_path, written_by):
    precision = "fp32" if written_by == "an fp32 run" else "fp16"
    with pytest.raises(Interrupt):
        toy_runner(tmp_path, precision, on_epoch_end=stop_after_epoch_0).run(resume=False)
    if written_by == "before fp16":  # checkpoints had no scaler entry
        snapshot = load_checkpoint(tmp_path / "stage1.pt")
        save_checkpoint(tmp_path / "stage1.pt", {k: v for k, v in snapshot.items() if k not in ("version", "scaler")})

    resumed = toy_runner(tmp_path, "fp16")  # runtime settings may change across a resume
    resumed.run(resume=True)
    assert resumed.scaler.get_scale() == 65536.0
    assert resumed.scaler.state_dict()["_growth_tracker"] == 4  # epoch 1's steps only


def test_fp32_checkpoints_hold_an_empty_scaler_and_their_history_no_skips(tmp_path):
    runner = toy_runner(tmp_path, "fp32")
    state = runner.run(resume=False)
    assert load_checkpoint(tmp_path / "stage1.pt")["scaler"] == {}
    assert all("skipped_steps" not in row for row in state.history)


def test_skipped_fp16_steps_are_counted_and_not_taken_for_a_non_finite_loss(tmp_path):
    # Inputs of 1000 make the scaled weight gradients overflow in fp16 until the scale backs off.
    runner = toy_runner(tmp_path, "fp16", level=1000.0)
    state = runner.run(resume=False)
    skipped = [row["skipped_steps"] for row in state.history]
    assert skipped[0] > 0 and runner.scaler.get_scale() < 65536.0
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in state.history)
