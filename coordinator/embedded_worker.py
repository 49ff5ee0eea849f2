"""The embedded worker: the reference worker app served in-process on 127.0.0.1:0 when none is configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from coordinator.config import Config
from coordinator.logs import get_logger

log = get_logger("coordinator.embedded_worker")


class EmbeddedConfigError(Exception):
    """`worker.embedded_config` is missing or invalid; `errors` holds one help line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class EmbeddedWorker:
    """Runs `worker.app.create_app` under its own AppRunner on a loopback port; `url` is set by `start()`.

    `worker` is imported here, lazily, so every other path works without it. The worker's config is
    built from the coordinator's (`worker.workspace_root`, `session.max_sessions`, `server.log_level`)
    and ignores the environment, whose PORT and HOST belong to the coordinator.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.url: str | None = None
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None

    def worker_overrides(self) -> dict[str, Any]:
        """The embedded worker's config, as `worker.config.load_config` overrides."""
        root = Path(self.config.worker.workspace_root).expanduser().resolve()
        return {
            "host": "127.0.0.1",
            "port": 0,
            "workspace_root": str(root),
            "max_sessions": self.config.session.max_sessions,
            # The coordinator expires sessions itself; the worker's own reaper is only a backstop.
            "session_idle_ttl_seconds": max(3600.0, 2 * self.config.session.max_age),
            "log_level": self.config.server.log_level,
        }

    def load_worker_config(self, load_config: Any, overrides: dict[str, Any]) -> Any:
        """The worker config: `worker.embedded_config` (if set) under the coordinator's overrides.

        Raises `EmbeddedConfigError` with one line per problem, each naming the file and its path.
        """
        from worker.config import ConfigError  # noqa: PLC0415 - lazy, as in start()

        path = self.config.worker.embedded_config or None
        try:
            return load_config(path, env={}, overrides=overrides)
        except ConfigError as exc:
            raise EmbeddedConfigError(
                [f"worker.embedded_config: {line}" for line in exc.errors]
            ) from exc

    async def start(self) -> str:
        """Create the workspace root, start the app, and return its base URL."""
        from worker.app import create_app  # noqa: PLC0415 - lazy: the worker is optional for remote setups
        from worker.config import load_config  # noqa: PLC0415

        overrides = self.worker_overrides()
        _make_root(overrides["workspace_root"])
        self._app = create_app(self.load_worker_config(load_config, overrides))
        # As in `worker` itself: a call the coordinator gives up on (shutdown grace) kills its run.
        self._runner = web.AppRunner(
            self._app, access_log=None, handle_signals=False, shutdown_timeout=5.0, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        log.info(
            "embedded worker started",
            extra={"worker_url": self.url, "workspace_root": overrides["workspace_root"]},
        )
        return self.url

    async def aclose(self) -> None:
        """Stop the worker (its shutdown kills any child process still running).

        With the memory store, the sessions die with this process: nothing could ever reach their
        workspaces again, so they are deleted rather than left under the workspace root for good.
        (Only this worker's own sessions: other coordinators may share the root, e.g. stdio copies.)
        """
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._app is not None and self.config.session.store == "memory":
            from worker.state import STATE  # noqa: PLC0415 - lazy, as in start()

            registry = self._app[STATE].sessions
            for session in registry.sessions():
                await registry.delete(session.id, reason="deleted at coordinator shutdown")
        self._app = None


def _make_root(path: str) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
