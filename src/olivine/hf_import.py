"""Import ``transformers`` without the two optional integrations it loads eagerly and Olivine never uses.

When scikit-learn and scipy are installed (``sentence-transformers`` brings both, and so does the
example's weights package), importing a transformers model imports them too: scikit-learn (~0.9 s here)
only to offer ``roc_curve`` to assisted generation's confidence threshold, and ``scipy.optimize`` (~0.5 s)
only for the Hungarian matcher of DETR-style training losses. Olivine loads, exports and evaluates models;
it never generates with an assistant or trains a detector. Both spots in transformers check an
availability flag first and skip the feature when it is off, so marking the two libraries unavailable
before transformers is first imported saves ~1.4 s per process.

The flags are transformers' own (``transformers.utils.import_utils``); they are set only if this process
has imported neither transformers nor the two libraries yet, so code that imported them first is left
exactly as it was. ``OLIVINE_TRANSFORMERS_FULL_IMPORT=1`` turns this off.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

#: transformers' availability flag -> the library it stands for.
_SKIPPED = {"_sklearn_available": "sklearn", "_scipy_available": "scipy"}
OPT_OUT_ENV = "OLIVINE_TRANSFORMERS_FULL_IMPORT"


def import_transformers() -> ModuleType:
    """``import transformers``, lean the first time (see the module docstring).

    Raises:
        ModuleNotFoundError: transformers is not installed.
    """
    if "transformers" not in sys.modules and os.environ.get(OPT_OUT_ENV, "") in ("", "0"):
        from transformers.utils import import_utils

        for flag, library in _SKIPPED.items():
            if library not in sys.modules and hasattr(import_utils, flag):
                setattr(import_utils, flag, False)
    import transformers

    return transformers
