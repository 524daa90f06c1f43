"""Operation kinds: one module per kind, registered here (see :mod:`streams.kinds.base`).

Adding a kind: a module with an :class:`~streams.kinds.base.OperationKind` subclass for its
``OperationType``, and one line in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas.common import OperationType
from streams.kinds.base import OperationKind
from streams.kinds.codes import CodeGeneration
from streams.kinds.dealers import DealerInvitation
from streams.kinds.jobs import JobKind
from streams.kinds.links import LinkSend

KINDS: Mapping[OperationType, OperationKind] = {
    kind.operation_type: kind
    for kind in (CodeGeneration(), LinkSend(), DealerInvitation(), JobKind())
}


def kind_of(operation_type: OperationType) -> OperationKind:
    return KINDS[operation_type]


__all__ = ["KINDS", "OperationKind", "kind_of"]
