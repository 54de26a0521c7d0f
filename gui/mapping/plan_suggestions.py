"""Which parameter each unmapped key probably is, ranked in the background for the plan shown.

`core.suggestions` compares every unmapped key with every parameter nothing claims: milliseconds
for a few keys, minutes when nothing maps (every key against every parameter of a 600M model). So
the ranking runs on a worker for each new plan, and is skipped when there are too many keys to
compare one by one — then the keys all differ the same way, and one pattern renaming them (a
source rule) is what is missing; the mapping page says so.
"""

from __future__ import annotations

import copy

from PySide6.QtCore import QObject, Signal

from ...core.planning.plan import Status
from ...core.planning.suggestions import Suggestion, confident_fixes
from ..workspace import workers
from ..workspace.workspace import Workspace

# Unmapped keys × unclaimed parameters ranked at most: about 4 s on a worker (the ranking costs
# about 0.3 ms a pair), a few hundred milliseconds for the usual handful of renamed keys.
PAIR_LIMIT = 12_000


def rank_job(prepared) -> dict[str, list[Suggestion]]:
    return prepared.suggestions()


class PlanSuggestions(QObject):
    changed = Signal()  # a ranking arrived, or the plan changed and the last one no longer applies

    def __init__(self, workspace: Workspace):
        super().__init__(workspace)
        self.workspace = workspace
        self.slot = workspace.task_slot("Ranking suggestions", doing="ranking suggestions")
        self._plan = None  # the plan the ranking is of
        self._ranked: dict[str, list[Suggestion]] = {}
        self.too_many = 0  # the unmapped keys when they were too many to rank, else 0
        workspace.planChanged.connect(self._plan_changed)

    def ranked(self) -> dict[str, list[Suggestion]]:
        """source key -> candidates, best first, for the plan shown now ({} until they are ranked)."""
        prepared = self.workspace.prepared
        return self._ranked if prepared is not None and prepared.plan is self._plan else {}

    def confident(self) -> dict[str, str]:
        """source key -> target for every row whose best candidate is confident."""
        return confident_fixes(self.ranked())

    def _plan_changed(self) -> None:
        prepared = self.workspace.prepared
        self._plan, self._ranked, self.too_many = None, {}, 0
        self.slot.drop()
        if prepared is not None:
            plan = prepared.plan
            unmapped = sum(1 for row in plan.rows
                           if row.status is Status.UNMAPPED and row.source_key and row.source_shape is not None)
            claimed = {row.target_key for row in plan.rows if row.status is Status.MAPPED}
            pairs = unmapped * sum(1 for key in prepared.targets if key not in claimed)
            if pairs > PAIR_LIMIT:
                self._plan, self.too_many = plan, unmapped
            elif pairs:
                task = workers.Task("rank suggestions", rank_job, copy.copy(prepared))  # a snapshot of this plan
                task.plan = plan
                self.slot.start(task, self._ranked_arrived)
        self.changed.emit()

    def _ranked_arrived(self, task, ranked: dict[str, list[Suggestion]]) -> None:
        self._plan, self._ranked = task.plan, ranked
        self.changed.emit()
