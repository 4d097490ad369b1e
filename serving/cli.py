"""``churnkit serve``: start the scoring service (joins the CLI through the ``churnkit.commands``
entry-point group, see pyproject.toml)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from churnkit.cli import err
from churnkit.errors import SettingsError
from serving.settings import ENV_PREFIX, Settings
from serving.store import open_store


def serve(
    model: Annotated[str, typer.Option("--model", envvar="CHURNKIT_MODEL", help="Bundle "
                                       "directory or MLflow URI (models:/NAME@champion).")],
    data: Annotated[str, typer.Option("--data", envvar="CHURNKIT_DATA", help="Event store: "
                                      "directory of the shop's tables, or a postgresql:// URL; "
                                      "read fresh on every request.")],
    port: Annotated[int, typer.Option("--port", envvar="CHURNKIT_PORT",
                                      help="HTTP port.")] = 3000,
    host: Annotated[str, typer.Option("--host", envvar="CHURNKIT_HOST",
                                      help="Interface to listen on.")] = "127.0.0.1",
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="CHURNKIT_API_KEY",
                                                help="Require this key (X-API-Key header) on "
                                                "scoring calls.", show_default=False)] = None,
    max_ids: Annotated[int | None, typer.Option("--max-ids", envvar="CHURNKIT_MAX_IDS",
                                                help="Most ids per /score call "
                                                "(default 1000).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", envvar="CHURNKIT_WORKERS",
                                                help="Service processes, each scoring on "
                                                "one core (default: one per core, at "
                                                "most 4).")] = None,
) -> None:
    """Serve scores over HTTP (BentoML): POST /score, POST /score_events, /readyz, /metrics."""
    raw: dict[str, object] = {"model": model, "data": data, "port": port, "api_key": api_key,
                              "max_ids": max_ids, "workers": workers}
    # Settings given only through the environment or CHURNKIT_CONFIG still apply.
    try:
        base = Settings.from_env({**os.environ, **{ENV_PREFIX + "MODEL": model,
                                                   ENV_PREFIX + "DATA": data}})
        settings = Settings.parse({**base.__dict__, **{k: v for k, v in raw.items()
                                                       if v is not None}})
        if "://" not in settings.model and not (Path(settings.model) / "bundle.json").exists():
            raise SettingsError(f"--model {settings.model}: no bundle there (bundle.json "
                                "missing); give a bundle directory or models:/NAME@alias")
        store = open_store(settings.data)  # fails fast, with the store's own message
        where = store.describe()  # never shows a database password
        store.close()
    except (SettingsError, ValueError) as exc:
        err.print(f"churnkit: error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    env = {**os.environ, **settings.to_env()}
    root = Path(__file__).resolve().parent.parent
    argv = [sys.executable, "-m", "bentoml", "serve", "serving.service:ChurnService",
            "--port", str(settings.port), "--host", host, "--working-dir", str(root)]
    err.print(f"churnkit: serving {settings.model} on http://{host}:{settings.port} "
              f"(store: {where})", markup=False, highlight=False)
    os.execvpe(argv[0], argv, env)
