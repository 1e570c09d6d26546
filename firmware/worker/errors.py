"""Errors a caller of the inference client sees; each says what happened to which request."""

from glasses_firmware.drivers.errors import GlassesError


class WorkerError(GlassesError, RuntimeError):
    """The inference worker could not complete a request."""


class WorkerCrashed(WorkerError):
    """The worker died or hung while the request was in flight; it is being restarted."""


class WorkerDegraded(WorkerError):
    """The worker crashed repeatedly and is no longer restarted; inference is off."""


class WorkerUnavailable(WorkerError):
    """The worker is not running (not started, stopped, or still starting past the deadline)."""


class RequestCancelled(WorkerError):
    """The request was cancelled and the worker acknowledged it."""


class DeadlineExceeded(WorkerError, TimeoutError):
    """The request did not finish before its deadline."""


class BadInput(GlassesError, ValueError):
    """A request's input cannot be used (NaN audio, an unknown language or task); says which."""


class RemoteError(WorkerError):
    """The worker reported an error of a kind this client does not know; `kind` names it."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def not_ready(client, what: str) -> str:
    """Why `what` cannot run on a worker `client` that is not ready, fit to be spoken."""
    state = client.state
    if state == "restarting":
        return f"{what} is restarting after a fault; try again in a few seconds"
    if state == "starting":
        return f"{what} is still starting; try again in a few seconds"
    if state == "degraded":
        return f"{what} is off: its worker crashed repeatedly; restart the glasses"
    return f"{what} is not running (its worker is {state})"


def from_worker(kind: str, message: str) -> Exception:
    """The client-side exception for an `error` message from the worker."""
    from glasses_firmware.models.manifest import ModelNotInstalled
    from glasses_firmware.models.verify import ModelCorrupt, ModelMissing
    known = {"ModelMissing": ModelMissing, "ModelCorrupt": ModelCorrupt,
             "ModelNotInstalled": ModelNotInstalled, "DeadlineExceeded": DeadlineExceeded,
             "BadInput": BadInput}
    cls = known.get(kind)
    return cls(message) if cls else RemoteError(kind, message)
