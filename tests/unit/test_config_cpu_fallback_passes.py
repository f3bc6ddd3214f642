"""``--cpu-fallback`` rewrites the pass options that only a GPU runs: ModelBuilder's fp16 / bf16 precision and
GPU-only switches, ``io_bind``; each change is reported; the rewritten config validates on the CPU."""

from __future__ import annotations

from olivine.config.cpu_fallback import to_cpu


def test_model_builder_gpu_precision_and_switches_become_cpu_ones() -> None:
    raw = {
        "passes": {
            "mb": {"type": "ModelBuilder", "precision": "fp16", "enable_cuda_graph": True},
            "bf": {"type": "modelbuilder", "config": {"precision": "bf16", "use_cuda_bf16": True}},
            "tune": {"type": "OrtSessionParamsTuning", "io_bind": True},
            "q": {"type": "OnnxStaticQuantization", "precision": "int8"},
        }
    }
    out, notes = to_cpu(raw)
    passes = out["passes"]
    assert passes["mb"]["precision"] == "fp32" and passes["mb"]["enable_cuda_graph"] is False
    assert passes["bf"]["config"] == {"precision": "fp32", "use_cuda_bf16": False}
    assert passes["tune"]["io_bind"] is False
    assert passes["q"] == {"type": "OnnxStaticQuantization", "precision": "int8"}
    assert "passes.mb.precision: 'fp16' -> 'fp32'" in notes
    assert "passes.bf.config.use_cuda_bf16: true -> false" in notes
    assert "passes.tune.io_bind: true -> false" in notes
    assert raw["passes"]["mb"]["precision"] == "fp16"  # the input is not changed


def test_model_builder_cpu_precisions_are_left_alone() -> None:
    raw = {"passes": {"mb": {"type": "ModelBuilder", "precision": "int4"}}}
    out, notes = to_cpu(raw)
    assert out == raw and notes == []
