"""The contract of a bundle's model parts: a format version, ``save`` and ``load``.

Every part (:class:`~churnkit.models.ChurnModel`, :class:`~churnkit.models.ValueModel`,
:class:`~churnkit.models.UpliftModel`, :class:`~churnkit.models.TimingModel`,
:class:`~churnkit.models.DriftReference`, and the bundle's :class:`~churnkit.policy.PolicyConfig`)
saves itself into a directory of its own and loads from it. Each writes one JSON document that
records :attr:`ModelPart.FORMAT`; loading refuses a document of another format, and reads a
document without one (saved before parts recorded it) as format 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Protocol, Self, runtime_checkable

from churnkit.errors import BundleMismatchError
from churnkit.io.atomic import atomic_file

#: The format of a document that does not record one.
FIRST_FORMAT = 1


@runtime_checkable
class ModelPart(Protocol):
    """What the bundle needs of a part: its on-disk format version, ``save`` and ``load``.

    A fitted part also has ``fit``, which returns the part, and a prediction method; their
    arguments differ by part (features and labels, or stacked training snapshots; ``as_of``
    where the output depends on the date), so they are not part of this protocol.
    """

    #: Version of the directory layout ``save`` writes; bumped when an older ``load`` could
    #: no longer read it.
    FORMAT: ClassVar[int]

    def save(self, directory: str | Path) -> None:
        """Write the fitted part into ``directory`` (created when missing)."""
        ...

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """The part :meth:`save` wrote into ``directory``."""
        ...


def write_document(directory: str | Path, name: str, doc: dict, *, format: int) -> Path:
    """Write ``doc`` with its ``format`` as the JSON file ``directory/name`` (atomically;
    ``directory`` is created when missing). Returns the file's path."""
    path = Path(directory) / name
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps({"format": format, **doc}, indent=1, default=float))
    return path


def read_document(directory: str | Path, name: str, *, part: str,
                  format: int | tuple[int, ...]) -> dict:
    """The JSON document ``directory/name`` written by :func:`write_document`, in ``format``
    (or one of several formats this code still reads).

    Raises
    ------
    FileNotFoundError
        No such file (``part`` names what was looked for).
    BundleMismatchError
        The document records another format than ``format``.
    """
    path = Path(directory) / name
    if not path.exists():
        raise FileNotFoundError(f"no {part} at {directory} (missing {name})")
    doc = json.loads(path.read_text())
    found = doc.get("format", FIRST_FORMAT)
    readable = (format,) if isinstance(format, int) else tuple(format)
    if found not in readable:
        raise BundleMismatchError(f"{part} format {found} at {directory}; this code reads "
                                  f"format {' or '.join(map(str, readable))}")
    return doc
