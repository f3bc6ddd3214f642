"""Hosts: where a submitted workflow runs, its job records, the job store, bundles and the worker.

:mod:`olivine.hosts.service` is the entry point for the api layer (submit, status, list_jobs, logs,
cancel, wait, fetch, resume); :mod:`olivine.hosts.base` has the host contract and registry.
"""
