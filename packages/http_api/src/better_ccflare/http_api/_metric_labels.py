"""The label values the metrics use, each from a bounded set.

Every distinct label combination is a time series Prometheus keeps, so no label may take a
value per request (ids, paths) or whatever a client sends. Accounts are bounded by the pool,
status by its class, account states (core's ``AccountState``) and reasons by enums. Model
names come from clients and upstreams: :class:`ModelLabels` drops their date suffix and
admits at most ``limit`` distinct names per process; every later new name is counted as
``other``.
"""

from __future__ import annotations

import re

__all__ = [
    "NO_ACCOUNT",
    "OTHER_MODEL",
    "ModelLabels",
    "status_class",
]

NO_ACCOUNT = "none"
"""The account label of a request no account answered (the proxy replied itself)."""
OTHER_MODEL = "other"
UNKNOWN_MODEL = "unknown"

_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")
_MAX_MODEL_CHARS = 64
_MAX_REMEMBERED = 4096


def status_class(status: int | None) -> str:
    """``2xx``, ``4xx``...; ``none`` when no status was sent."""
    if status is None or not 100 <= status < 600:
        return "none"
    return _STATUS_CLASSES[status // 100 - 1]


class ModelLabels:
    """Model names made into label values, at most ``limit`` distinct ones plus ``other``.

    ``claude-sonnet-4-5-20250929`` becomes ``claude-sonnet-4-5``: the dated releases of one
    model are one series. The names admitted are the first ones seen, which on a real pool are
    the models in use; a client sending made-up names cannot grow the series past the limit.
    """

    __slots__ = ("_admitted", "_labels", "limit")

    def __init__(self, *, limit: int = 32) -> None:
        self.limit = limit
        self._admitted: set[str] = set()
        self._labels: dict[str | None, str] = {}
        """Raw name to label: the hot path pays one dict lookup for a name seen before."""

    def __call__(self, model: str | None) -> str:
        label = self._labels.get(model)
        if label is not None:
            return label
        label = self._admit(_normalised(model))
        if len(self._labels) < _MAX_REMEMBERED:
            self._labels[model] = label
        return label

    def _admit(self, name: str) -> str:
        if name in self._admitted:
            return name
        if len(self._admitted) >= self.limit:
            return OTHER_MODEL
        self._admitted.add(name)
        return name


def _normalised(model: str | None) -> str:
    if not model:
        return UNKNOWN_MODEL
    return _DATE_SUFFIX.sub("", model.strip().lower())[:_MAX_MODEL_CHARS] or UNKNOWN_MODEL
