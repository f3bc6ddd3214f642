"""Run a data config: load -> pre-process -> dataloader, and the post-process applied to model outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from olivine.config.data import DataConfig
from olivine.data.builtins import BuildContext
from olivine.data.components import Component, resolve_components
from olivine.data.loader import DataLoader, unbatched_loader
from olivine.data.paths import absolute_params
from olivine.data.registry import ComponentKind
from olivine.errors import ConfigError, DataError, OlivineError
from olivine.model.handle import ModelHandle


def model_input_names(model: ModelHandle | None) -> list[str] | None:
    """The model's input names when they are cheap to know: an ONNX graph's inputs, or ``io_config``."""
    if model is None:
        return None
    if model.kind == "onnx":
        import onnx

        try:
            graph = onnx.load(str(model.onnx_path), load_external_data=False).graph
        except Exception as exc:  # protobuf's DecodeError and onnx's errors share no narrower base
            raise DataError(f"cannot read the inputs of {model.model_path}: {exc}") from exc
        initializers = {init.name for init in graph.initializer}
        return [i.name for i in graph.input if i.name not in initializers]
    io_config = model.config.get("io_config")
    if isinstance(io_config, dict) and io_config.get("input_names"):
        return [str(n) for n in io_config["input_names"]]
    return None


def build_dataloader(
    dc: DataConfig,
    *,
    model: ModelHandle | None = None,
    tokenizer_path: str | None = None,
    base_dir: Path | None = None,
) -> DataLoader:
    """The batches of ``dc``: ``(inputs: dict[str, np.ndarray], labels: np.ndarray | None)``.

    Args:
        dc: the data config.
        model: the model the batches are for; its input names name positional inputs and pick the
            transformers dummy inputs.
        tokenizer_path: local folder of the Hugging Face tokenizer (a ``model_name`` parameter overrides it).
        base_dir: the folder relative paths are relative to (default: the working directory).

    Raises:
        ConfigError / NotSupportedError: the data config is invalid (see :func:`validate_data_config`).
        DataError: loading or batching failed; names the data config and the component.
    """
    components = _resolve(dc, base_dir)
    if tokenizer_path is None:
        tokenizer_path = _own_hf_files(model)
    ctx = BuildContext(
        base_dir=base_dir, tokenizer_path=tokenizer_path, model_inputs=model_input_names(model)
    )
    load = components["load_dataset"]
    dataset = _call(dc, load, lambda: _run(load, ctx, None))
    pre = components["pre_process_data"]
    dataset = _call(dc, pre, lambda: _run(pre, ctx, dataset))
    loader_component = components["dataloader"]
    result = _call(dc, loader_component, lambda: _run(loader_component, ctx, dataset))
    if isinstance(result, DataLoader):
        return result
    # A user dataloader: an iterable of batches; keep its batch_size for throughput.
    loader = unbatched_loader(result, input_names=ctx.model_inputs)
    batch_size = loader_component.params.get("batch_size")
    loader.batch_size = batch_size if isinstance(batch_size, int) else None
    return loader


def _own_hf_files(model: ModelHandle | None) -> str | None:
    """The model's own folder when it holds a Hugging Face ``config.json`` (a ModelBuilder output, an export
    with ``save_metadata_for_token_generation``): the transformers dummy data read its cache layout there."""
    if model is None or not model.model_path:
        return None
    path = Path(str(model.model_path))
    folder = path if path.is_dir() else path.parent
    return str(folder) if (folder / "config.json").is_file() else None


def _resolve(dc: DataConfig, base_dir: Path | None) -> dict[ComponentKind, Component]:
    try:
        return resolve_components(dc, base_dir=base_dir)
    except ConfigError as exc:
        prefix = f"data_configs.{dc.name}"
        raise type(exc)(exc.message, path=f"{prefix}.{exc.path}" if exc.path else prefix) from None


def _run(component: Component, ctx: BuildContext, first: Any) -> Any:
    if component.builtin is not None:
        if component.kind == "load_dataset":
            return component.builtin.func(ctx, component.config)
        return component.builtin.func(ctx, first, component.config)
    assert component.user_func is not None
    kwargs = absolute_params(component.user_kwargs(), ctx.base_dir)
    if component.kind == "load_dataset":
        return component.user_func(**kwargs)
    return component.user_func(first, **kwargs)


def _call(dc: DataConfig, component: Component, fn: Callable[[], Any]) -> Any:
    try:
        result = fn()
    except OlivineError as exc:
        if isinstance(exc, DataError):
            raise DataError(
                f"data config '{dc.name}', {component.kind} '{component.type_name}': {exc}"
            ) from exc
        raise
    except Exception as exc:  # user components may raise anything
        raise DataError(
            f"data config '{dc.name}', {component.kind} '{component.type_name}' failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if result is None and component.user_func is not None:
        # A user function that forgot its return: the next step failed with "'NoneType' object is not
        # iterable", naming neither the data config nor the function.
        raise DataError(
            f"data config '{dc.name}', {component.kind} '{component.type_name}' returned None "
            "(does the function return its dataset / dataloader?)"
        )
    return result


def post_processor(dc: DataConfig, *, base_dir: Path | None = None) -> Callable[[Any], Any]:
    """The post-process of ``dc`` as ``f(output) -> predictions``.

    ``output`` is the model's output array, or for an ONNX model with several outputs a mapping output
    name -> array (as Olive passes it). Olive's default post-process returns the output unchanged.
    """
    component = _resolve(dc, base_dir)["post_process_data"]
    kwargs = absolute_params(component.user_kwargs(), base_dir) if component.user_func else {}

    def post(output: Any) -> Any:
        def apply() -> Any:
            if component.builtin is not None:
                return component.builtin.func(output, component.config)
            assert component.user_func is not None
            return component.user_func(output, **kwargs)

        return _call(dc, component, apply)

    return post
