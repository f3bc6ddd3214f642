"""In-memory datasets the built-in components produce. Every dataset is indexable and sized, and item ``i``
is ``(inputs, label)`` as in Olive: ``inputs`` a mapping name -> array (or a tuple of arrays matched to the
model's input names in order), ``label`` an array, a number or ``None``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from olivine.errors import DataError

Sample = tuple[Any, Any]

# torch dtype names Olive configs use that mean something else (or nothing) to numpy.
_DTYPE_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "bool": "bool",
}


def numpy_dtype(name: str) -> np.dtype[Any]:
    """``"float32"``, ``"torch.int64"``, ``"float"`` (torch's float32) ... -> a numpy dtype."""
    key = name.strip().removeprefix("torch.")
    try:
        return np.dtype(_DTYPE_ALIASES.get(key, key))
    except TypeError as exc:
        raise DataError(f"unknown input type '{name}'") from exc


class SampleListDataset:
    """A list of ready ``(inputs, label)`` samples."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]


class ArrayDataset:
    """Named arrays sharing a first (sample) axis, and optional labels along the same axis."""

    def __init__(self, inputs: dict[str, np.ndarray], labels: np.ndarray | None = None) -> None:
        sizes = {name: len(arr) for name, arr in inputs.items()}
        if labels is not None:
            sizes["<label>"] = len(labels)
        if len(set(sizes.values())) > 1:
            raise DataError(f"arrays have different numbers of samples (first axis): {sizes}")
        self.inputs = inputs
        self.labels = labels
        self._len = next(iter(sizes.values())) if sizes else 0

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> Sample:
        if not -self._len <= index < self._len:
            raise IndexError(index)
        label = None if self.labels is None else self.labels[index]
        return {name: arr[index] for name, arr in self.inputs.items()}, label


class RepeatDataset:
    """One sample repeated ``count`` times (Olive's dummy datasets)."""

    def __init__(self, sample: Sample, count: int) -> None:
        self.sample = sample
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self.sample


def dummy_sample(
    input_shapes: list[list[int]], input_names: list[str] | None, input_types: list[str] | None
) -> Sample:
    """Olive's dummy sample: ones of each shape and type (a dict when named), with label ``[0]``."""
    types = input_types or ["float32"] * len(input_shapes)
    if len(types) != len(input_shapes) or (input_names and len(input_names) != len(input_shapes)):
        raise DataError("input_shapes, input_names and input_types must have the same length")
    arrays = [np.ones(shape, dtype=numpy_dtype(t)) for shape, t in zip(input_shapes, types, strict=True)]
    data: Any = dict(zip(input_names, arrays, strict=True)) if input_names else tuple(arrays)
    return data, np.array([0])


def load_arrays(data_files: str | list[str] | dict[str, str], base_dir: Path | None) -> dict[str, np.ndarray]:
    """Arrays of ``.npz`` files (concatenated along axis 0) or of a mapping name -> ``.npy`` file."""
    from olivine.data.user_script import resolve_path

    if isinstance(data_files, dict):
        return {name: _load_npy(resolve_path(p, base_dir)) for name, p in data_files.items()}
    files = [data_files] if isinstance(data_files, str) else list(data_files)
    parts: dict[str, list[np.ndarray]] = {}
    for file in files:
        path = resolve_path(file, base_dir)
        if path.suffix == ".npy":
            raise DataError(f"{path}: name each .npy file with a mapping, e.g. {{'input': '{file}'}}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                for name in npz.files:
                    parts.setdefault(name, []).append(npz[name])
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {path} as .npz: {exc}") from exc
    missing = {n for n, arrs in parts.items() if len(arrs) != len(files)}
    if missing:
        raise DataError(f"arrays {sorted(missing)} are not in every one of {files}")
    return {name: np.concatenate(arrs) if len(arrs) > 1 else arrs[0] for name, arrs in parts.items()}


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as .npy: {exc}") from exc


class RawDataset:
    """Olive's ``raw_dataset``: one binary file per sample and input under ``data_dir/<input_dir>/``."""

    def __init__(
        self,
        data_dir: Path,
        input_names: list[str],
        input_shapes: list[list[int]],
        input_types: list[str] | None = None,
        input_dirs: list[str] | None = None,
        input_suffix: str | None = None,
        input_order_file: str | None = None,
        annotations_file: str | None = None,
    ) -> None:
        types = input_types or ["float32"] * len(input_names)
        dirs = input_dirs or input_names
        if not len(input_names) == len(input_shapes) == len(types) == len(dirs):
            raise DataError("input_names, input_shapes, input_types and input_dirs must have the same length")
        self.data_dir = data_dir
        self.specs = {
            name: (shape, numpy_dtype(t), d)
            for name, shape, t, d in zip(input_names, input_shapes, types, dirs, strict=True)
        }
        if input_order_file is None:
            pattern = f"*{input_suffix}" if input_suffix else "*"
            first_dir = data_dir / dirs[0]
            skip = {input_order_file, annotations_file}
            self.files = sorted(p.name for p in first_dir.glob(pattern) if p.is_file() and p.name not in skip)
        else:
            lines = (data_dir / input_order_file).read_text(encoding="utf-8").splitlines()
            self.files = [line.strip() for line in lines if line.strip()]
        self.annotations = np.load(data_dir / annotations_file) if annotations_file else None
        if self.annotations is not None and len(self.annotations) != len(self.files):
            raise DataError(f"{len(self.annotations)} annotations for {len(self.files)} input files")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Sample:
        name = self.files[index]
        data = {
            input_name: np.fromfile(self.data_dir / d / name, dtype=dtype).reshape(shape)
            for input_name, (shape, dtype, d) in self.specs.items()
        }
        label = 0 if self.annotations is None else self.annotations[index]
        return data, label
