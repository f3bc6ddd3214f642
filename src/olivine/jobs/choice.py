"""Which datastore a name means, and opening it with its credentials.

A datastore is named by the user as a datastore of the workflow (``datastores`` in the run config), a
datastore of the hosts file (the only place credentials live), an fsspec URL or a local path. Submitting,
re-attaching (``status``/``logs --datastore``) and the asset commands all resolve names here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.datastores.base import Datastore
from olivine.datastores.local import absolute_url
from olivine.datastores.paths import default_datastore_dir
from olivine.errors import ReferenceNotFoundError
from olivine.jobs.profiles import Profiles

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow


@dataclass(frozen=True)
class DatastoreChoice:
    """Where a job exports. ``options`` hold no credentials; ``profile`` names the hosts-file entry that
    has them."""

    name: str | None
    url: str
    options: dict[str, Any]
    profile: str | None = None

    def open(self, profiles: Profiles) -> Datastore:
        """The datastore, opened with the public options plus the profile's credentials."""
        options = dict(self.options)
        if self.profile:
            options.update(profiles.datastore(self.profile).options)
        return Datastore.from_url(self.url, options)


def choose_datastore(
    name: str | None, profiles: Profiles, wf: ResolvedWorkflow | None = None
) -> DatastoreChoice:
    """Resolve a datastore name: the workflow's ``datastores``, then the hosts file, then a URL or path.

    Args:
        name: the name, URL or path; None means the local default datastore.
        profiles: the hosts file.
        wf: the workflow whose ``datastores`` are looked at first, if any.

    Raises:
        ReferenceNotFoundError: the name is defined nowhere and is neither a URL nor a path.
    """
    # Relative local paths are made absolute here, once, against the folder of the file that wrote
    # them (the current folder for a command-line URL): the worker runs in its job folder and never
    # resolves a datastore path again.
    if name is None:
        return DatastoreChoice(None, default_datastore_dir().as_uri(), {})
    if wf is not None and name in wf.config.datastores:
        config = wf.config.datastores[name]
        return DatastoreChoice(name, absolute_url(config.url, wf.base_dir), config.options)
    if profiles.has_datastore(name):
        profile = profiles.datastore(name)
        url = absolute_url(profile.url, profiles.path.parent)
        return DatastoreChoice(name, url, profile.public_options(), profile=name)
    if "://" in name or name.startswith(("/", "~", ".")):
        return DatastoreChoice(name, absolute_url(name, Path.cwd()), {})
    defined = sorted(set(wf.config.datastores if wf is not None else ()) | set(profiles.data.datastores))
    where = f"not in {profiles.path}"
    if wf is not None:
        where = f"neither in the workflow's datastores nor in {profiles.path}"
    raise ReferenceNotFoundError(
        f"datastore '{name}' is {where} (defined: {', '.join(defined) or 'none'}); a URL works too"
    )
