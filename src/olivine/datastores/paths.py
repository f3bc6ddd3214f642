"""Where Olivine keeps per-user state: one resolution shared by datastores and hosts.

``$OLIVINE_HOME`` wins when set (one folder for everything, handy for tests and containers); otherwise
the XDG base directories are used (``$XDG_CONFIG_HOME`` / ``$XDG_DATA_HOME``, falling back to
``~/.config`` and ``~/.local/share``). As the XDG spec requires, relative XDG values are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "olivine"


def olivine_home() -> Path | None:
    """``$OLIVINE_HOME`` as an absolute path, or ``None`` when it is unset or empty."""
    value = os.environ.get("OLIVINE_HOME", "").strip()
    if not value:
        return None
    return Path(value).expanduser().resolve()


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "").strip()
    # The XDG spec: "If an implementation encounters a relative path in any of these variables it
    # should consider the path invalid and ignore it."
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def user_config_dir() -> Path:
    """Folder for the user's Olivine config (e.g. datastore credentials): ``$OLIVINE_HOME`` or
    ``$XDG_CONFIG_HOME/olivine`` (default ``~/.config/olivine``). Not created here."""
    home = olivine_home()
    return home if home is not None else _xdg("XDG_CONFIG_HOME", ".config") / APP


def user_data_dir() -> Path:
    """Folder for the user's Olivine data (job store, default datastore): ``$OLIVINE_HOME`` or
    ``$XDG_DATA_HOME/olivine`` (default ``~/.local/share/olivine``). Not created here."""
    home = olivine_home()
    return home if home is not None else _xdg("XDG_DATA_HOME", ".local/share") / APP


def default_datastore_dir() -> Path:
    """The folder of the default ``file://`` datastore: ``<user_data_dir()>/datastore``."""
    return user_data_dir() / "datastore"
