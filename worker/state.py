"""The typed state one worker application holds, under the web.AppKey `STATE`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from worker.config import WorkerConfig
from worker.processes import ProcessGroups
from worker.sessions import SessionRegistry


@dataclass(slots=True)
class WorkerState:
    """Everything one worker application holds. `draining` flips once, on shutdown."""

    config: WorkerConfig
    sessions: SessionRegistry
    groups: ProcessGroups
    body_cap: int
    draining: bool = False
    started: float = field(default_factory=time.monotonic)


STATE = web.AppKey("worker_state", WorkerState)
