"""Jobs: what a submitted workflow is, wherever it runs.

Records and their state machine (:mod:`~olivine.jobs.records`), the local job store
(:mod:`~olivine.jobs.store`), the typed worker status that travels back from a worker
(:mod:`~olivine.jobs.status`), the job folder's layout (:mod:`~olivine.jobs.folder`), the bundle
(:mod:`~olivine.jobs.bundle`), the worker entry point (:mod:`~olivine.jobs.worker`) and the export-side
helpers every host shares (:mod:`~olivine.jobs.exports`, :mod:`~olivine.jobs.remote`,
:mod:`~olivine.jobs.abandoned`). Nothing here knows a particular host: hosts live in
:mod:`olivine.hosts` and import this package, never the reverse.
"""
