"""The admin API's response and request bodies, as pydantic models.

They live in :mod:`relier.ops.admin` (they need no framework); this module
re-exports them under the names it has always had.
"""

from __future__ import annotations

from relier.ops.admin import (
    MAX_ID_LENGTH,
    MAX_IDS,
    RelierDeadSummary,
    RelierDeadTask,
    RelierDlqPage,
    RelierHealth,
    RelierHTTPError,
    RelierInflightTask,
    RelierMetrics,
    RelierProblem,
    RelierPurged,
    RelierQueueDepth,
    RelierRates,
    RelierReleased,
    RelierStatus,
    RelierTaskDetail,
    RelierTaskIds,
    RelierWorker,
)
from relier.ops.admin import TaskId as TaskId

__all__ = [
    "MAX_IDS",
    "MAX_ID_LENGTH",
    "RelierDeadSummary",
    "RelierDeadTask",
    "RelierDlqPage",
    "RelierHTTPError",
    "RelierHealth",
    "RelierInflightTask",
    "RelierMetrics",
    "RelierProblem",
    "RelierPurged",
    "RelierQueueDepth",
    "RelierRates",
    "RelierReleased",
    "RelierStatus",
    "RelierTaskDetail",
    "RelierTaskIds",
    "RelierWorker",
]
