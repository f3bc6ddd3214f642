"""Hosts: where a submitted workflow runs, its job records, the job store, bundles and the worker.

:mod:`olivine.hosts.service` is the entry point for the api layer (submit, status, list_jobs, logs,
cancel, wait, fetch, resume; remote_status, remote_logs, assets_list, assets_show from a datastore
alone); :mod:`olivine.hosts.base` has the host contract and registry.
"""
