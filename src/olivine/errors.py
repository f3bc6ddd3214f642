"""One exception tree for Olivine.

    OlivineError                      base; ``exit_code`` tells the CLI how to exit
    +-- UserInputError (exit 2)       the user can fix it by editing a file or a flag
    |   +-- ConfigError               invalid run config: names the file and the key path
    |       +-- ReferenceNotFoundError    a system / evaluator / data config / datastore name is undefined
    |       +-- NotSupportedError         valid Olive, but not something Olivine does (yet)
    |       +-- UserScriptError           a script the config names cannot be imported (its code
    |                                     raised, or a package it imports is not installed)
    |   +-- MissingDependencyError    an optional extra is not installed (message has the pip hint)
    |   +-- JobNotFoundError          no job with that id in the job store / datastore
    +-- WorkflowError (exit 1)        the workflow ran and something in it failed
    |   +-- PassRunError              a pass raised; names the pass
    |   +-- EvaluationError           a metric could not be computed
    |   +-- DataError                 a data config could not be loaded
    |   +-- ModelLoadError            a model could not be loaded
    |   +-- UserCodeExitError         user code ended the workflow: sys.exit(), os._exit(), a raised
    |                                 KeyboardInterrupt (a job's error kind: ``user``)
    +-- CacheError (exit 1)           the cache folder is unusable
    +-- HostError (exit 1)            infrastructure: submitting, a worker, a job store
    +-- DatastoreError (exit 1)       reading or writing a datastore failed
        +-- IntegrityError            a fetched file does not match the manifest's sha256

Third-party exceptions are wrapped where they enter (``raise ... from exc``).
"""

from __future__ import annotations


class OlivineError(Exception):
    """Base of every error Olivine raises on purpose."""

    exit_code = 1


class UserInputError(OlivineError):
    exit_code = 2


class ConfigError(UserInputError):
    """A run config is invalid.

    Args:
        message: what is wrong and what is allowed.
        path: the key path, e.g. ``passes.quant.weight_type``.
        file: the config file it came from, if any.
    """

    def __init__(self, message: str, *, path: str = "", file: str | None = None) -> None:
        self.message = message
        self.path = path
        self.file = file
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.file}: " if self.file else ""
        key = f"{self.path}: " if self.path else ""
        return f"{where}{key}{self.message}"

    def with_file(self, file: str) -> ConfigError:
        return type(self)(self.message, path=self.path, file=file)


class ReferenceNotFoundError(ConfigError):
    pass


class NotSupportedError(ConfigError):
    """Valid in Olive, not done by Olivine (yet); like every config error it names the key and the file."""


class UserScriptError(ConfigError):
    """A user script the config names cannot be imported: the message names the script, the key path and
    the config file. The user fixes it (their code, or a package to install), so it exits 2."""


class MissingDependencyError(UserInputError):
    pass


class JobNotFoundError(UserInputError):
    pass


class WorkflowError(OlivineError):
    pass


class PassRunError(WorkflowError):
    def __init__(self, pass_name: str, message: str) -> None:
        self.pass_name = pass_name
        super().__init__(f"pass '{pass_name}' failed: {message}")


class EvaluationError(WorkflowError):
    pass


class DataError(WorkflowError):
    pass


class ModelLoadError(WorkflowError):
    pass


class CacheError(OlivineError):
    pass


class HostError(OlivineError):
    pass


class DatastoreError(OlivineError):
    pass


class IntegrityError(DatastoreError):
    pass


class UserCodeExitError(WorkflowError):
    """User code (a user script, a model loader, a metric) ended the workflow on its own: it called
    ``sys.exit()``/``os._exit()`` or raised ``KeyboardInterrupt`` without a signal. The user's doing,
    not the infrastructure's: hosts record it with error kind ``user``."""


class WorkflowCancelledError(WorkflowError):
    """The workflow was asked to stop (cancel) and stopped between steps."""
