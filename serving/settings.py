"""The scoring service's settings: environment variables, optionally a YAML config file.

Every setting has an environment variable (``CHURNKIT_<NAME>``, upper case); a YAML file named by
``CHURNKIT_CONFIG`` may give any of them too (keys in lower case, e.g. ``max_ids: 500``), and an
environment variable wins over the file. Parsed once, when the service starts, into a frozen
:class:`Settings`; a bad value stops the start with a message that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from churnkit.errors import SettingsError

ENV_PREFIX = "CHURNKIT_"


#: The default worker count is one per core, at most this many: each worker holds its own copy
#: of the bundle and of the store's snapshot.
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """One service process per core, at most :data:`MAX_DEFAULT_WORKERS`."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


@dataclass(frozen=True)
class Settings:
    """What the service needs to start.

    Attributes
    ----------
    model
        The bundle: a directory or an MLflow URI such as ``models:/churn@champion``
        (``CHURNKIT_MODEL``).
    data
        The event store: a directory of contract tables (``NAME.parquet``, a ``NAME/`` directory
        of Parquet parts, or ``NAME.csv``), read through DuckDB on every request so that rows
        appended since the start are seen; or a database URL (``postgresql://...``) read with
        :func:`churnkit.load_tables` (``CHURNKIT_DATA``).
    api_key
        When set, every scoring call must carry it in the ``X-API-Key`` header (or as
        ``Authorization: Bearer <key>``); otherwise 401 (``CHURNKIT_API_KEY``).
    max_ids
        Most customer ids per ``/score`` call (``CHURNKIT_MAX_IDS``, default 1000).
    max_events_rows
        Most rows over all tables in one ``/score_events`` call (``CHURNKIT_MAX_EVENTS_ROWS``).
    max_future_seconds
        How far past the server's clock an ``as_of`` may lie (``CHURNKIT_MAX_FUTURE_SECONDS``,
        default one day): a later one is refused as a likely mistake.
    batch_wait_ms
        How long a request may wait for others to be scored in the same call
        (``CHURNKIT_BATCH_WAIT_MS``, default 0: no waiting, the requests queued while the
        previous call ran are merged; a call costs a few milliseconds, so waiting for more
        only adds to every answer's latency). See :mod:`serving.merging`.
    queue_timeout_s
        A request that waited this long for its scoring call is answered 503 instead
        (``CHURNKIT_QUEUE_TIMEOUT_S``, default 10 s): load shedding under overload.
    store_memory_mb
        A Parquet directory whose files total at most this many MB is also held in memory,
        validated once, and answered from while no file has changed since
        (``CHURNKIT_STORE_MEMORY_MB``, default 256; 0 = always read the files). In memory it
        takes several times the size of its files. See :mod:`serving.store`.
    port
        HTTP port (``CHURNKIT_PORT``, default 3000).
    workers
        Service processes (``CHURNKIT_WORKERS``, default one per core, at most
        :data:`MAX_DEFAULT_WORKERS`). Each loads the bundle and holds its own store snapshot,
        merges the requests it receives and scores them on one core; the operating system
        spreads connections over them. See :func:`workers_setting`.
    """

    model: str
    data: str
    api_key: str | None = None
    max_ids: int = 1000
    max_events_rows: int = 100_000
    max_future_seconds: float = 86_400.0
    batch_wait_ms: float = 0.0
    queue_timeout_s: float = 10.0
    store_memory_mb: float = 256.0
    port: int = 3000
    workers: int = field(default_factory=default_workers)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``CHURNKIT_CONFIG`` (YAML, optional) overlaid with ``CHURNKIT_*``."""
        return cls.parse(cls._raw(os.environ if environ is None else environ))

    @classmethod
    def _raw(cls, env: Mapping[str, str]) -> dict[str, object]:
        """The raw values of ``CHURNKIT_CONFIG`` overlaid with ``CHURNKIT_*`` (not checked)."""
        raw: dict[str, object] = {}
        config = env.get(f"{ENV_PREFIX}CONFIG")
        if config:
            path = Path(config)
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise SettingsError(f"CHURNKIT_CONFIG={config}: cannot read it: {exc}") from exc
            if not isinstance(loaded, dict):
                raise SettingsError(f"CHURNKIT_CONFIG={config}: expected a mapping of settings")
            raw.update({str(k).lower(): v for k, v in loaded.items()})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise SettingsError(f"CHURNKIT_CONFIG={config}: unknown settings {', '.join(unknown)}"
                                f" (known: {', '.join(sorted(names))})")
        for name in names:
            value = env.get(ENV_PREFIX + name.upper())
            if value not in (None, ""):
                raw[name] = value
        return raw

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> Settings:
        """Check and convert raw values (strings from the environment, or YAML values)."""
        values: dict[str, object] = {}
        for f in fields(cls):
            var = ENV_PREFIX + f.name.upper()
            if f.name not in raw or raw[f.name] is None:
                if f.name in ("model", "data"):
                    raise SettingsError(f"{var} is not set: give the "
                                        f"{'model bundle (path or models:/NAME@champion)' if f.name == 'model' else 'event store (a directory of tables or a database URL)'}")  # noqa: E501
                continue
            value = raw[f.name]
            kind = cls.__dataclass_fields__[f.name].type
            try:
                if kind == "int":
                    values[f.name] = int(value)  # type: ignore[arg-type]
                elif kind == "float":
                    values[f.name] = float(value)  # type: ignore[arg-type]
                else:
                    values[f.name] = str(value)
            except (TypeError, ValueError):
                raise SettingsError(f"{var}={value!r}: expected a number") from None
        for name in ("max_ids", "max_events_rows", "port", "workers"):
            if name in values and int(values[name]) < 1:  # type: ignore[call-overload]
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be >= 1, "
                                    f"got {values[name]}")
        for name in ("max_future_seconds", "batch_wait_ms", "queue_timeout_s", "store_memory_mb"):
            if name in values and float(values[name]) < 0:  # type: ignore[arg-type]
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be >= 0, "
                                    f"got {values[name]}")
        if "queue_timeout_s" in values and float(values["queue_timeout_s"]) <= 0:  # type: ignore[arg-type]
            raise SettingsError(f"{ENV_PREFIX}QUEUE_TIMEOUT_S must be > 0, "
                                f"got {values['queue_timeout_s']}")
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The ``CHURNKIT_*`` variables that reproduce these settings (for a child process)."""
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name))
                for f in fields(self) if getattr(self, f.name) is not None}


def workers_setting(environ: Mapping[str, str] | None = None) -> int:
    """The ``workers`` setting alone, as the service module needs it when it is imported
    (BentoML takes the worker count in the ``@bentoml.service`` decorator, before the service
    reads its other settings); :func:`default_workers` when not set. A bad value raises
    :class:`SettingsError`."""
    raw = Settings._raw(os.environ if environ is None else environ)
    value = raw.get("workers")
    if value in (None, ""):
        return default_workers()
    try:
        workers = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise SettingsError(f"{ENV_PREFIX}WORKERS={value!r}: expected a number") from None
    if workers < 1:
        raise SettingsError(f"{ENV_PREFIX}WORKERS must be >= 1, got {workers}")
    return workers
