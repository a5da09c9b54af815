"""The device path: CPU against CUDA on the same work (skipped where torch sees no GPU),
and the run settings every command shares."""
import os

import pytest
import torch

from sgquant.assignment import BitAssignment
from sgquant.settings import run_settings, use_run_settings

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


def test_run_settings_set_the_environment(monkeypatch):
    monkeypatch.delenv("SGQUANT_DEVICE", raising=False)
    monkeypatch.delenv("SGQUANT_SCHEDULER", raising=False)
    out = use_run_settings("cpu", "local")
    assert os.environ["SGQUANT_DEVICE"] == "cpu" and os.environ["SGQUANT_SCHEDULER"] == "local"
    assert out["device"].startswith("cpu") and out["scheduler"] == "local"
    with pytest.raises(ValueError, match="not a Dask scheduler address"):
        use_run_settings(scheduler="8786")
    with pytest.raises(ValueError, match="device must be"):
        use_run_settings(device="gpu0")
    monkeypatch.delenv("SGQUANT_SCHEDULER")
    assert run_settings()["scheduler"] == "local process pool"


@cuda
def test_cpu_and_cuda_agree(cora, tmp_path):
    """Training, fine-tuning, packed inference and the memory count give the same
    results on a GPU as on the CPU, to float tolerance (cache keys ignore the device)."""
    from sgquant.measure import clear_setup_cache, measure, prepare
    from sgquant.packed import packed_forward

    results = str(tmp_path)
    cpu = prepare("Cora", "gcn", 0, "quick", results, device="cpu")
    clear_setup_cache()
    gpu = prepare("Cora", "gcn", 0, "quick", results, device="cuda")  # same cached FP32 state
    assert gpu.device.type == "cuda" and gpu.fp32 == cpu.fp32
    a = BitAssignment.uniform(4, 2)
    rc = measure(cpu, a, results=str(tmp_path / "c"))
    rg = measure(gpu, a, results=str(tmp_path / "g"))
    assert abs(rc["val_acc"] - rg["val_acc"]) <= 0.01 and rc["saving"] == rg["saving"]
    out_c = packed_forward(cpu.model, cpu.data, a, chunk_size=256)
    out_g = packed_forward(gpu.model, gpu.data, a, chunk_size=256)
    assert (out_c.argmax(1) == out_g.argmax(1).cpu()).float().mean() > 0.99
    torch.testing.assert_close(out_g.cpu(), out_c, atol=1e-3, rtol=1e-3)
