"""``OnnxQuantizationPreprocess``: onnxruntime's quantization pre-processing as a pass of its own.

The same step the quantization passes run first when ``quant_preprocess`` is on: symbolic shape
inference, onnxruntime's graph optimization, ONNX shape inference (Olive's parameters skip each).
Unlike inside a quantization pass, a failure here fails the pass.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from olivine.errors import PassRunError
from olivine.model.handle import ModelHandle
from olivine.passes.base import PassConfig, PassContext
from olivine.passes.onnx_io import ExternalDataConfig, OnnxPass, onnx_output_handle, publish_onnx_file
from olivine.passes.quant_run import preprocess


class OnnxQuantizationPreprocessConfig(ExternalDataConfig):
    skip_optimization: bool = False
    skip_onnx_shape: bool = False
    skip_symbolic_shape: bool = False


class OnnxQuantizationPreprocess(OnnxPass):
    name: ClassVar[str] = "OnnxQuantizationPreprocess"
    version: ClassVar[str] = "1"
    config_class: ClassVar[type[PassConfig]] = OnnxQuantizationPreprocessConfig

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        cfg: OnnxQuantizationPreprocessConfig = config
        source = model.onnx_path
        # onnxruntime writes the output in place with the pass's external-data layout (one save); only
        # convert_attribute, which it does not offer, needs a re-save through publish_onnx_file.
        # onnx checks the external-data name against the working directory (not the model's folder) and
        # refuses to save when a file of that name is there: then the pass writes it itself too.
        location = cfg.external_data_name or f"{source.name}.data"
        direct = not cfg.convert_attribute and not os.path.lexists(location)
        with tempfile.TemporaryDirectory(prefix="olivine-prep-") as tmp:
            try:
                output_dir.mkdir(parents=True, exist_ok=True)
                written = preprocess(
                    source,
                    Path(tmp),
                    ctx,
                    skip_optimization=cfg.skip_optimization,
                    skip_onnx_shape=cfg.skip_onnx_shape,
                    skip_symbolic_shape=cfg.skip_symbolic_shape,
                    fail_ok=False,
                    target=output_dir / source.name if direct else None,
                    external=cfg if direct else None,
                )
            except Exception as exc:  # symbolic shape inference and the optimizer raise assorted errors
                hint = (
                    "skip_symbolic_shape: true"
                    if "symbolic shape" in str(exc).lower()
                    else "skip_optimization: true, or skip_symbolic_shape: true"
                )
                message = f"quant_pre_process failed on {source}: {exc} (try {hint})"
                raise PassRunError(self.name, message) from exc
            if not direct:
                publish_onnx_file(written, output_dir / source.name, cfg)
        return onnx_output_handle(model, output_dir, source.name, model.attributes)
