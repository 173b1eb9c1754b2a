"""What an ``execute_many`` or an NQL execute answered, as the client hands it back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import NexthinkError
from .models import NQL_MAX_ROWS, ExecutionResponse

__all__ = ["BulkExecution", "NqlResult", "attach", "completed_before"]


@dataclass(frozen=True, slots=True)
class BulkExecution:
    """The answers to the requests of one ``execute_many``, in the order they were sent."""

    responses: list[ExecutionResponse] = field(default_factory=list)

    @property
    def request_uuids(self) -> list[str]:
        return [r.request_uuid for r in self.responses]

    @property
    def executions_uuids(self) -> list[str]:
        return [uuid for r in self.responses for uuid in r.executions_uuids]


@dataclass(frozen=True, slots=True)
class NqlResult:
    """The rows of one NQL execute, and whether they may be only the first of more.

    NQL execute answers at most ``NQL_MAX_ROWS`` (1,000) rows and says nothing when it stops
    there: an answer of exactly that many rows may have been cut short (``maybe_truncated``).
    """

    rows: list[dict[str, Any]]

    @property
    def maybe_truncated(self) -> bool:
        return len(self.rows) >= NQL_MAX_ROWS


def completed_before(exc: BaseException) -> BulkExecution | None:
    """What an ``execute_many`` that raised ``exc`` had already run (``exc.completed``)."""
    completed = getattr(exc, "completed", None)
    return completed if isinstance(completed, BulkExecution) else None


def attach(exc: NexthinkError, completed: BulkExecution, chunk: int, chunks: int) -> None:
    """Tell the caller what ran before ``exc``: attributes, and a note for tracebacks."""
    exc.completed = completed
    exc.chunk = chunk
    exc.chunks = chunks
    if chunks > 1:
        ran = ", ".join(completed.request_uuids) or "none"
        exc.add_note(f"chunk {chunk} of {chunks} failed; requests that ran before it: {ran}")
