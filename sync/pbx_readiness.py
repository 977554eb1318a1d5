"""`check-pbx`'s reads: the PBX's own API description and settings, and the connector's options.

Every read here is a GET: check-pbx changes nothing, on the PBX or in state. A read the
PBX refuses (a 4xx) becomes an `Unreadable` line in the report; bad credentials or an
unreachable PBX stop the check at the first read with one line, as every command does.
The verdict is `sync.pbx_check.assess`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from shared.errors import one_line
from shared.threecx import TcxApiError
from sync.eligibility import personal_contacts_asked_by
from sync.options import tenant_defaults
from sync.pbx_check import CheckResult, PbxFacts, Unreadable, check_description, parse_description
from sync.runtime import Runtime

T = TypeVar("T")


def read_pbx_facts(rt: Runtime) -> PbxFacts:
    """Read what `assess` judges; see the module docstring for how a failed read ends."""
    rt.settings.require_tcx()
    tcx = rt.tcx
    return PbxFacts(
        client_id=tcx.client_id,
        description=_read(lambda: _description(tcx.api_description())),
        version=_read(tcx.version),
        users=_read(tcx.count_users),
        contacts=_read(tcx.count_contacts),
        roles=_read(tcx.api_client_roles),
        integration=_read(tcx.microsoft365_integration),
        personal_contacts_asked_by=personal_contacts_asked_by(
            tenant_defaults(rt.settings), rt.state.option_overrides().values()
        ),
        shared_mailboxes=bool(rt.settings.shared_mailboxes),
    )


def _description(text: str) -> CheckResult:
    try:
        return check_description(parse_description(text))
    except ValueError as error:  # served, but not an OpenAPI document
        raise _NotADescription(str(error)) from None


class _NotADescription(Exception):
    pass


def _read(call: Callable[[], T]) -> T | Unreadable:
    try:
        return call()
    except TcxApiError as error:  # refused (403, 404 …): that is what the report says
        return Unreadable(one_line(error))
    except _NotADescription as error:
        return Unreadable(str(error))
