"""Batches: the :class:`DataLoader` every data config becomes, and numpy collation of Olive-style samples.

A batch is ``(inputs, labels)``: ``inputs`` maps model input names to arrays, ``labels`` is an array or
``None``. Samples and batches coming from user code may hold torch tensors, numpy arrays or Python lists;
they are converted to numpy. Inputs given positionally (a tuple of arrays, or one array) are matched to
the model's input names in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from olivine.errors import DataError

Batch = tuple[dict[str, np.ndarray], np.ndarray | None]


class DataLoader:
    """An iterable of :data:`Batch` es that can be iterated more than once.

    Args:
        source: returns a fresh iterator of batches each call.
        length: the number of batches, when known (``len()`` raises TypeError otherwise).
        batch_size: samples per batch when the loader batches samples; ``None`` when the dataset yields
            whole batches itself.
    """

    def __init__(
        self, source: Callable[[], Iterator[Batch]], *, length: int | None, batch_size: int | None
    ) -> None:
        self._source = source
        self.length = length
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[Batch]:
        return self._source()

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("this data loader does not know its number of batches")
        return self.length

    def first_batch(self) -> Batch:
        """The first batch; raises DataError when there is none."""
        for batch in self:
            return batch
        raise DataError("the data config produced no batches")


def to_numpy(value: Any, *, what: str = "value") -> np.ndarray:
    """A numpy array from a numpy array, torch tensor, number or (nested) list."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        return np.asarray(value.detach().cpu().numpy())
    if hasattr(value, "numpy") and callable(value.numpy):
        return np.asarray(value.numpy())
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"cannot turn {what} of type {type(value).__name__} into an array: {exc}") from exc


def split_sample(item: Any) -> tuple[Any, Any]:
    """Olive's convention: a pair ``(data, label)``; anything else is data without a label."""
    if isinstance(item, tuple | list) and len(item) == 2:
        return item[0], item[1]
    return item, None


def inputs_dict(data: Any, input_names: Sequence[str] | None) -> dict[str, np.ndarray]:
    """``data`` as name -> array; positional data is matched to ``input_names`` in order."""
    if hasattr(data, "items"):
        out = {}
        for key, value in data.items():
            if isinstance(value, list | tuple | dict) and value and not _is_numeric_list(value):
                raise DataError(f"input '{key}' is nested ({type(value).__name__}); inputs must be arrays")
            out[str(key)] = to_numpy(value, what=f"input '{key}'")
        return out
    positional = list(data) if isinstance(data, tuple | list) else [data]
    if not input_names:
        raise DataError(
            "the data gives inputs by position, but the model's input names are unknown; return a mapping "
            "name -> array, or give input_names"
        )
    if len(positional) > len(input_names):
        raise DataError(f"the data gives {len(positional)} inputs but the model takes {list(input_names)}")
    return {
        name: to_numpy(value, what=f"input '{name}'")
        for name, value in zip(input_names, positional, strict=False)
    }


def _is_numeric_list(value: Any) -> bool:
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (ValueError, TypeError):
        return False


def collate(samples: Sequence[Any], input_names: Sequence[str] | None) -> Batch:
    """Stack samples along a new first axis (numpy's version of torch's ``default_collate``)."""
    split = [split_sample(s) for s in samples]
    dicts = [inputs_dict(data, input_names) for data, _ in split]
    names = list(dicts[0])
    batch: dict[str, np.ndarray] = {}
    for name in names:
        try:
            batch[name] = np.stack([d[name] for d in dicts])
        except KeyError as exc:
            raise DataError(f"input '{name}' is missing from some samples") from exc
        except ValueError as exc:
            shapes = sorted({d[name].shape for d in dicts})
            raise DataError(
                f"cannot batch input '{name}': samples have shapes {shapes} (pad them, e.g. padding: "
                "'max_length', or use batch_size 1)"
            ) from exc
    labels = [label for _, label in split]
    if all(label is None for label in labels):
        return batch, None
    if any(label is None for label in labels):
        raise DataError("some samples have a label and some do not")
    return batch, np.stack([to_numpy(label, what="label") for label in labels])


def as_batch(item: Any, input_names: Sequence[str] | None) -> Batch:
    """A batch yielded by a user dataloader (or a batch-sized sample), normalized."""
    data, label = split_sample(item)
    return inputs_dict(data, input_names), None if label is None else to_numpy(label, what="label")


def batching_loader(
    dataset: Any,
    *,
    batch_size: int,
    drop_last: bool = False,
    shuffle: bool = False,
    input_names: Sequence[str] | None = None,
) -> DataLoader:
    """Batch an indexable dataset (or chunk an iterable one) into :data:`Batch` es."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        return DataLoader(
            lambda: _chunked(dataset, batch_size, drop_last, input_names), length=None, batch_size=batch_size
        )
    count = len(dataset)
    order = np.random.default_rng(0).permutation(count) if shuffle else np.arange(count)

    def batches() -> Iterator[Batch]:
        for start in range(0, count, batch_size):
            index = order[start : start + batch_size]
            if drop_last and len(index) < batch_size:
                return
            yield collate([dataset[int(i)] for i in index], input_names)

    length = count // batch_size if drop_last else math.ceil(count / batch_size)
    return DataLoader(batches, length=length, batch_size=batch_size)


def _chunked(
    items: Iterable[Any], batch_size: int, drop_last: bool, input_names: Sequence[str] | None
) -> Iterator[Batch]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == batch_size:
            yield collate(chunk, input_names)
            chunk = []
    if chunk and not drop_last:
        yield collate(chunk, input_names)


def unbatched_loader(dataset: Any, *, input_names: Sequence[str] | None = None) -> DataLoader:
    """Each item of ``dataset`` (or of a user dataloader) already is a batch."""
    indexable = hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")
    length = len(dataset) if hasattr(dataset, "__len__") else None

    def batches() -> Iterator[Batch]:
        # Index a sized dataset explicitly: iterating one whose __getitem__ never raises IndexError
        # (a common torch Dataset bug) would not end.
        items = (dataset[i] for i in range(len(dataset))) if indexable else iter(dataset)
        for item in items:
            yield as_batch(item, input_names)

    return DataLoader(batches, length=length, batch_size=None)
