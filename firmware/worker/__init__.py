"""The supervised inference worker and the client the firmware uses to reach it."""

from .client import InferenceClient, Stream
from .errors import (BadInput, DeadlineExceeded, RemoteError, RequestCancelled, WorkerCrashed,
                     WorkerDegraded, WorkerError, WorkerUnavailable)
from .protocol import PRIORITY_BACKGROUND, PRIORITY_INTERACTIVE, PRIORITY_NORMAL
from .supervisor import STATES, SupervisorSettings

__all__ = ["InferenceClient", "Stream", "SupervisorSettings", "STATES", "WorkerError",
           "WorkerCrashed", "WorkerDegraded", "WorkerUnavailable", "RequestCancelled",
           "DeadlineExceeded", "RemoteError", "BadInput", "PRIORITY_INTERACTIVE", "PRIORITY_NORMAL",
           "PRIORITY_BACKGROUND"]
