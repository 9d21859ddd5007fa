"""The ``approval`` kind: a person approves (or not) what an agent asks.

Nothing here verifies a proof: the approval is answered by a person from their own session
(`juncture.service.approvals`, `approval.approve`) and recorded by the challenge service. The
kind is declared so that journeys may name it (``kind: approval``), with AAL 0 and no ``amr``.
"""

from __future__ import annotations

from juncture.methods.base import MethodKind
from juncture.policy.kinds import built_in

KIND = MethodKind.of(built_in("approval"))
