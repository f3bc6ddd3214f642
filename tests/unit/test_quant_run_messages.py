"""The one-line reason a quantization step gives when onnxruntime's tools fail."""

from __future__ import annotations

from olivine.passes.quant_run import _why


def test_a_failure_without_a_message_is_named_by_its_type() -> None:
    # onnxruntime's symbolic shape inference fails on a bare ``assert``: str(exc) is empty.
    assert _why(AssertionError()) == "AssertionError without a message"
    assert _why(ValueError("   \n")) == "ValueError without a message"


def test_a_failure_with_a_message_gives_its_first_line_only() -> None:
    exc = RuntimeError("\n  Incomplete symbolic shape inference\nTraceback (most recent call last):\n  ...")
    assert _why(exc) == "Incomplete symbolic shape inference"
