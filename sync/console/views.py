"""The administrator's console: pages and form actions, independent of Azure Functions' objects.

`triggers/console.py` turns a request into a `ConsoleRequest`, calls `handle` and returns the
`ConsoleResponse`; `python -m sync serve` serves the very same handlers. Every response carries
the security headers; every page and action requires the signed-in principal to hold the app
role (`sync.console.security`), every POST a valid CSRF token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

from markupsafe import Markup

from shared.errors import UpstreamError, one_line
from shared.identifiers import MalformedId, user_reference
from shared.settings import ConfigError
from shared.state import LockHeld
from shared.telemetry import log_event
from sync.console import charts, render
from sync.console.render import BASE, age, bullet_list, hidden, notice, table
from sync.console.security import (
    CSRF_FIELD,
    SECURITY_HEADERS,
    Principal,
    Refused,
    check_csrf,
    cookie_nonce,
    csrf_cookie,
    csrf_token,
    new_nonce,
    principal_from,
    trusted_source,
)
from sync.eligibility import is_paused
from sync.envelope import RUN_KINDS
from sync.held import HoldChanged, HoldNotFound, approve_hold, dismiss_hold, pending_holds
from sync.option_admin import UnknownUser, options_report, set_user_options
from sync.options import OPTION_NAMES
from sync.records import Link, RunRecord
from sync.runtime import Runtime
from sync.schedule import POISON_CHECK_SCHEDULE, ScheduleError, next_firing
from sync.subscriptions import RENEW_BEFORE

STATIC = Path(__file__).with_name("static")
# What /api/console/static/{name} serves: the style sheet, the chart script and Chart.js (MIT, vendored).
STATIC_FILES = {
    "console.css": "text/css",
    "charts.js": "text/javascript",
    "chart.umd.min.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
RUNS_PER_KIND = 50  # runs on one page of the Runs page; "Older runs" goes on from the last
USERS_SHOWN = 100
STATUSES = ("running", "succeeded", "partial", "failed", "skipped")


@dataclass
class ConsoleRequest:
    method: str
    page: str  # overview, runs, held, decide, users, user, options, css
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    route: dict[str, str] = field(default_factory=dict)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass
class ConsoleResponse:
    status: int
    body: str
    content_type: str = "text/html"
    headers: dict[str, str] = field(default_factory=dict)

    def with_status(self, status: int) -> ConsoleResponse:
        self.status = status
        return self


@dataclass
class _Context:
    rt: Runtime
    principal: Principal
    token: str
    now: datetime

    def page(
        self, title: str, active: str, body: Markup, status: int = 200, scripts: tuple[str, ...] = ()
    ) -> ConsoleResponse:
        held = len(pending_holds(self.rt))
        return ConsoleResponse(
            status, render.page(title, active, self.principal.name, body, held=held, scripts=scripts)
        )

    def form(self, action: str, fields: Markup, button: str, cls: str = "") -> Markup:
        return Markup('<form method="post" action="{}" class="{}">{}{}<button type="submit">{}</button></form>').format(
            action, cls, hidden(CSRF_FIELD, self.token), fields, button
        )


def handle(request: ConsoleRequest, runtime: Callable[[], Runtime]) -> ConsoleResponse:
    """Answer one console request (see the module docstring)."""
    response = _handle(request, runtime)
    response.headers = {**SECURITY_HEADERS, **response.headers}  # a static file keeps its own caching
    return response


def _handle(request: ConsoleRequest, runtime: Callable[[], Runtime]) -> ConsoleResponse:
    if request.page == "static":
        name = request.route.get("name", "")
        if name not in STATIC_FILES:
            return _bare(404, "no such file")
        response = ConsoleResponse(200, (STATIC / name).read_text(encoding="utf-8"), STATIC_FILES[name])
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response
    try:
        principal = principal_from(request.headers)
    except Refused as refusal:
        if refusal.status == 401 and trusted_source() == "app-service":
            login = "/.auth/login/aad?post_login_redirect_uri=" + quote(f"{BASE}", safe="/")
            return ConsoleResponse(302, "", headers={"Location": login})
        log_event("console_refused", logging.WARNING, page=request.page, reason=str(refusal))
        return _bare(refusal.status, str(refusal))
    try:
        rt = runtime()
        key = rt.state.signing_key("console-csrf")
    except ConfigError as error:
        return _bare(500, one_line(error))
    nonce = cookie_nonce(request.headers)
    set_cookie = {}
    if request.method == "POST":
        try:
            check_csrf(key, principal, nonce, request.form().get(CSRF_FIELD))
        except Refused as refusal:
            log_event("console_refused", logging.WARNING, page=request.page, reason="csrf", user=principal.name)
            return _bare(refusal.status, str(refusal))
    if nonce is None:
        nonce = new_nonce()
        set_cookie = {"Set-Cookie": csrf_cookie(nonce)}
    context = _Context(rt, principal, csrf_token(key, principal, nonce), datetime.now(UTC))
    try:
        response = _PAGES[request.page](context, request)
    except UpstreamError as error:
        response = context.page("Not reachable", "overview", notice(one_line(error), "error"), 502)
    response.headers.update(set_cookie)
    return response


def _bare(status: int, message: str) -> ConsoleResponse:
    """A page for a refusal: no data, just why."""
    body = Markup(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Console</title>'
        '<link rel="stylesheet" href="{0}/static/console.css"><link rel="icon" href="{0}/static/favicon.svg"></head>'
        "<body><main><h1>{1}</h1><p>{2}</p></main></body></html>"
    ).format(BASE, "Not allowed" if status in (401, 403) else "Error", message)
    return ConsoleResponse(status, str(body))


# -- overview ---------------------------------------------------------------------------------


def _overview(ctx: _Context, _request: ConsoleRequest) -> ConsoleResponse:
    rt, now = ctx.rt, ctx.now
    paused = is_paused(rt.settings)
    parts = [
        notice("Paused: SYNC_PAUSED is true; nothing is changed in 3CX.", "warning")
        if paused
        else notice("Running: not paused.", "ok"),
        _reachability(rt),
    ]
    rows: list[tuple[object, ...]] = []
    for kind in RUN_KINDS:
        last = next(iter(rt.state.recent_runs(kind, 1)), None)
        if last is None:
            rows.append((kind, None, None, "never run"))
        else:
            rows.append((kind, render.status(last.status), render.counts(last.counts), age(last.started_at, now)))
    parts.append(Markup("<h2>Last runs</h2>{}").format(table(("Kind", "Status", "Counts", "Started"), rows)))
    parts.append(Markup("<h2>Next timer firings (UTC)</h2>{}").format(_timers(rt, now)))

    subscriptions = list(rt.state.subscriptions().values())
    expiring = [s for s in subscriptions if s.expires_at - now < RENEW_BEFORE[s.kind] and s.expires_at > now]
    expired = [s for s in subscriptions if s.expires_at <= now]
    healthy = len(subscriptions) - len(expiring) - len(expired)
    upkeep = next(iter(rt.state.recent_runs("subscriptions", 1)), None)
    failing = upkeep.errors if upkeep is not None and upkeep.status in ("failed", "partial") else []
    parts.append(
        Markup("<h2>Subscriptions</h2>{}{}").format(
            table(
                ("Healthy", "Expiring (renewal due)", "Expired", "Failing in the last upkeep"),
                [(healthy, len(expiring), len(expired), len(failing))],
            ),
            bullet_list(failing[:10], "errors"),
        )
    )

    links = rt.state.links()
    unreadable = [
        (links[m365_id].upn if m365_id in links else m365_id, presence.unreadable)
        for m365_id, presence in rt.state.presence_states().items()
        if presence.unreadable
    ]
    parts.append(Markup("<h2>Calendars marked unreadable</h2>{}").format(table(("User", "Why"), sorted(unreadable))))
    try:
        poison: object = rt.queue.poison_message_count()
    except Exception as error:  # cheaply readable or not at all: the page still shows the rest
        poison = f"not readable ({one_line(error)})"
    holds = len(pending_holds(rt))
    parts.append(
        Markup("<h2>Attention</h2>{}").format(
            table(
                ("Messages in the poison queue", "Plans held back"),
                [(poison, Markup('<a href="{}/held">{}</a>').format(BASE, holds) if holds else 0)],
            )
        )
    )
    return ctx.page("Overview", "overview", Markup("").join(parts))


def _reachability(rt: Runtime) -> Markup:
    """Whether the 3CX API answers (one cheap read: its version), else the one-line error."""
    try:
        version = rt.tcx.version()
    except Exception as error:  # unreachable, refused or not configured: said, and the page still shows
        return notice(f"3CX API: not reachable ({one_line(error)})", "error")
    return notice(f"3CX API: answered, version {version or 'not told'}.", "ok")


def _timers(rt: Runtime, now: datetime) -> Markup:
    """Each timer's schedule and when it fires next; "unknown" for an expression `sync.schedule` cannot read."""
    settings = rt.settings
    timers = (
        ("user_sync_timer", settings.user_sync_schedule),
        ("presence_timer", settings.presence_schedule),
        ("subscription_timer", settings.subscription_schedule),
        ("contact_sync_timer", settings.contact_sync_schedule),
        ("poison_queue_check", POISON_CHECK_SCHEDULE),
    )
    rows: list[tuple[object, ...]] = []
    for name, expression in timers:
        try:
            at = next_firing(expression, now)
        except ScheduleError:
            rows.append((name, expression, "unknown"))
            continue
        when = Markup('<time datetime="{}">{:%Y-%m-%d %H:%M:%S}</time>').format(at.isoformat(), at)
        rows.append((name, expression, when))
    return table(("Timer", "Schedule (NCRONTAB)", "Next firing"), rows)


# -- runs -------------------------------------------------------------------------------------


def _runs(ctx: _Context, request: ConsoleRequest) -> ConsoleResponse:
    kind = request.query.get("kind", "")
    status = request.query.get("status", "")
    before = _instant(request.query.get("before", ""))
    kinds = [kind] if kind in RUN_KINDS else list(RUN_KINDS)
    page = sorted(
        (run for k in kinds for run in ctx.rt.state.recent_runs(k, RUNS_PER_KIND + 1, before)),
        key=lambda run: run.started_at,
        reverse=True,
    )
    more, page = len(page) > RUNS_PER_KIND, page[:RUNS_PER_KIND]
    runs = [run for run in page if run.status == status] if status in STATUSES else page

    def options(values: tuple[str, ...], chosen: str, everything: str) -> Markup:
        choices = [("", everything), *((v, v) for v in values)]
        return Markup("").join(
            Markup('<option value="{}"{}>{}</option>').format(v, Markup(" selected") if v == chosen else "", label)
            for v, label in choices
        )

    filters = Markup(
        '<form method="get" action="{}/runs" class="filters"><label>Kind <select name="kind">{}</select></label>'
        '<label>Status <select name="status">{}</select></label><button type="submit">Filter</button></form>'
    ).format(BASE, options(RUN_KINDS, kind, "every kind"), options(STATUSES, status, "every status"))
    rows = [_run_row(run, ctx.now) for run in runs]
    body = filters + table(("Started", "Kind", "Trigger", "Subject", "Status", "Counts", "Details"), rows)
    if more:
        older = urlencode({"kind": kind, "status": status, "before": page[-1].started_at.isoformat()})
        body += Markup('<p><a href="{}/runs?{}">Older runs</a></p>').format(BASE, older)
    return ctx.page("Runs", "runs", body)


def _instant(text: str) -> datetime | None:
    """A `before=` time as the Runs page writes it; anything else is no bound."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _run_row(run: RunRecord, now: datetime) -> tuple[object, ...]:
    details = []
    if run.guard:
        details.append(Markup('<p class="guard">{}</p>').format(run.guard))
    if run.resolution is not None:
        made = f" (run {run.resolution.run_id})" if run.resolution.run_id else ""
        details.append(
            Markup("<p>Held actions {} by {}{}</p>").format(run.resolution.decision, run.resolution.by, made)
        )
    if run.approves:
        details.append(Markup("<p>Applies the held actions of run {}</p>").format(run.approves))
    for label, items in (("Failures", run.errors), ("Skipped", run.skipped), ("Held back", run.held)):
        if items:
            details.append(
                Markup("<details><summary>{} ({})</summary>{}</details>").format(label, len(items), bullet_list(items))
            )
    started = Markup('<time datetime="{}">{:%Y-%m-%d %H:%M:%S}</time> ({})').format(
        run.started_at.isoformat(), run.started_at, age(run.started_at, now)
    )
    return (
        started,
        run.kind,
        run.trigger,
        run.subject,
        render.status(run.status),
        Markup("{} <small>{}</small>").format(render.counts(run.counts), run.run_id),
        Markup("").join(details) or None,
    )


# -- held back --------------------------------------------------------------------------------


def _held(ctx: _Context, _request: ConsoleRequest, message: Markup | None = None) -> ConsoleResponse:
    parts = [message] if message is not None else []
    holds = pending_holds(ctx.rt)
    if not holds:
        parts.append(Markup("<p>No plan is held back.</p>"))
    for run in holds:
        rows = [(a.kind, a.upn, a.extension, a.reason or None) for a in run.held_actions]
        action = f"{BASE}/held/{quote(run.run_id, safe='')}"
        digest = hidden("digest", run.held_digest or "")
        parts.append(
            Markup(
                '<section class="hold"><h2>Run {} <small>{}, {}</small></h2><p class="guard">{}</p>{}'
                '<div class="actions">{}{}</div></section>'
            ).format(
                run.run_id,
                run.trigger,
                age(run.started_at, ctx.now),
                f"{run.guard or ''} From the command line: python -m sync users --approve {run.run_id}",
                table(("Action", "User", "Extension", "Why"), rows, caption=f"{len(rows)} held actions"),
                ctx.form(f"{action}/approve", digest, "Approve these actions", "approve"),
                ctx.form(f"{action}/dismiss", digest, "Dismiss", "dismiss"),
            )
        )
    return ctx.page("Held back", "held", Markup("").join(parts))


def _decide(ctx: _Context, request: ConsoleRequest) -> ConsoleResponse:
    run_id, decision = request.route.get("run_id", ""), request.route.get("decision", "")
    digest = request.form().get("digest") or None
    who = ctx.principal.name
    log_event("console_decision", logging.WARNING, run=run_id, decision=decision, user=who, user_id=ctx.principal.id)
    try:
        if decision == "approve":
            result = approve_hold(ctx.rt, run_id, who, digest, trigger="console")
            skipped = [f"{skip.upn}: {skip.reason}" for skip in result.plan.skipped]
            failed = [f"{o.action.upn}: {o.error}" for o in result.outcomes if not o.ok]
            text = f"Approved: run {result.run_id} applied them ({render.counts(result.counts)})."
            message = notice(text, "ok" if result.status == "succeeded" else "warning") + bullet_list(
                [*skipped, *failed]
            )
        elif decision == "dismiss":
            dismiss_hold(ctx.rt, run_id, who, digest)
            message = notice(f"Dismissed the held actions of run {run_id}; nothing was changed.", "ok")
        else:
            return _bare(404, "no such decision")
    except HoldNotFound as error:
        return _held(ctx, request, notice(str(error), "error")).with_status(404)
    except (HoldChanged, LockHeld) as error:
        return _held(ctx, request, notice(str(error), "error")).with_status(409)
    return _held(ctx, request, message)


# -- charts -----------------------------------------------------------------------------------


def _charts(ctx: _Context, _request: ConsoleRequest) -> ConsoleResponse:
    state, now = ctx.rt.state, ctx.now
    hour, day = timedelta(hours=1), timedelta(days=1)
    series = (
        (
            charts.bucketed(
                "3CX status changes per hour, last 7 days",
                state.runs_since("presence", now - 7 * day),
                charts.STATUS_FIELDS,
                now=now,
                width=hour,
                count=7 * 24,
            ),
            "%Y-%m-%d %H:00",
        ),
        (
            charts.bucketed(
                "User changes per day, last 30 days",
                state.runs_since("users", now - 30 * day),
                charts.USER_FIELDS,
                now=now,
                width=day,
                count=30,
            ),
            "%Y-%m-%d",
        ),
        (
            charts.bucketed(
                "Contact changes per day, last 30 days",
                state.runs_since("contacts", now - 30 * day),
                charts.CONTACT_FIELDS,
                now=now,
                width=day,
                count=30,
            ),
            "%Y-%m-%d",
        ),
    )
    parts = []
    for chart, when in series:
        top = max(chart.values, default=0) or 1
        rows = Markup("").join(
            Markup(
                '<tr data-label="{}" data-value="{}"><td><time datetime="{}">{}</time></td><td>{}</td>'
                '<td><meter min="0" max="{}" value="{}">{}</meter></td></tr>'
            ).format(start.strftime(when), value, start.isoformat(), start.strftime(when), value, top, value, value)
            for start, value in reversed(list(zip(chart.starts, chart.values, strict=True)))
        )
        parts.append(
            Markup(
                '<h2>{}</h2><p>{} in all (UTC).</p><details class="chart-data" open><summary>The numbers, newest first'
                '</summary><table data-chart="{}"><thead><tr><th scope="col">From</th><th scope="col">Changes</th>'
                '<th scope="col">Share of the busiest</th></tr></thead><tbody>{}</tbody></table></details>'
            ).format(chart.title, chart.total, chart.title, rows)
        )
    scripts = (f"{BASE}/static/chart.umd.min.js", f"{BASE}/static/charts.js")
    return ctx.page("Charts", "charts", Markup("").join(parts), scripts=scripts)


# -- users ------------------------------------------------------------------------------------


def _users(ctx: _Context, request: ConsoleRequest) -> ConsoleResponse:
    wanted = request.query.get("q", "").strip()
    folded = wanted.casefold()
    links = ctx.rt.state.links()
    mirror = ctx.rt.state.mirror()
    rows = []
    for m365_id in sorted(set(mirror) | set(links), key=lambda i: _upn_of(i, mirror, links).casefold()):
        raw = mirror.get(m365_id, {})
        link = links.get(m365_id)
        upn, name = _upn_of(m365_id, mirror, links), str(raw.get("displayName") or "")
        extension = link.extension if link else ""
        if folded and not (folded in upn.casefold() or folded in name.casefold() or extension.startswith(wanted)):
            continue
        rows.append(
            (
                Markup('<a href="{}/user?upn={}">{}</a>').format(BASE, quote(upn, safe="@"), name or upn),
                upn,
                extension or None,
                link.origin if link else "not linked",
            )
        )
    search = Markup(
        '<form method="get" action="{}/users" class="filters" role="search"><label>Name, UPN or extension '
        '<input type="search" name="q" value="{}"></label><button type="submit">Search</button></form>'
    ).format(BASE, wanted)
    shown = rows[:USERS_SHOWN]
    more = Markup("<p>{} more; narrow the search.</p>").format(len(rows) - len(shown)) if len(rows) > len(shown) else ""
    body = search + table(("Name", "UPN", "Extension", "3CX user"), shown) + more
    return ctx.page("Users", "users", body)


def _upn_of(m365_id: str, mirror: Mapping[str, Mapping[str, object]], links: Mapping[str, Link]) -> str:
    raw = mirror.get(m365_id)
    if raw and raw.get("userPrincipalName"):
        return str(raw["userPrincipalName"])
    link = links.get(m365_id)
    return link.upn if link is not None else m365_id


def _user(ctx: _Context, request: ConsoleRequest, message: Markup | None = None) -> ConsoleResponse:
    upn = request.query.get("upn", "") or request.form().get("upn", "")
    try:
        report = options_report(ctx.rt, user_reference(upn, "upn"))
    except MalformedId as error:
        return ctx.page("Not a user", "users", notice(str(error), "error"), 400)
    except UnknownUser as error:
        return ctx.page("Unknown user", "users", notice(str(error), "error"), 404)
    user = report["user"]
    link = ctx.rt.state.get_link(user["m365_id"])
    raw = ctx.rt.state.mirror().get(user["m365_id"], {})
    facts = table(
        ("Name", "UPN", "Extension", "3CX user"),
        [
            (
                raw.get("displayName"),
                user["upn"],
                link.extension if link else None,
                link.origin if link else "not linked",
            )
        ],
    )
    rows = []
    for name in OPTION_NAMES:
        override = user["overrides"].get(name)
        chosen = "default" if override is None else "on" if override else "off"
        default = "on" if report["defaults"][name] else "off"
        choices = Markup("").join(
            Markup('<option value="{}"{}>{}</option>').format(v, Markup(" selected") if v == chosen else "", label)
            for v, label in (("default", f"tenant default ({default})"), ("on", "on"), ("off", "off"))
        )
        select = Markup('<select name="{}" aria-label="{}">{}</select>').format(name, name, choices)
        rows.append((name, default, "on" if user["effective"][name] else "off", select))
    fields = hidden("upn", user["upn"]) + table(("Option", "Tenant default", "Effective", "For this user"), rows)
    form = ctx.form(f"{BASE}/user/options", fields, "Save options")
    parts = [message] if message is not None else []
    parts += [
        facts,
        Markup("<h2>3CX status</h2>"),
        _status_of(ctx.rt, user["m365_id"], link),
        Markup("<h2>Options</h2>"),
        form,
    ]
    return ctx.page(str(user["upn"]), "users", Markup("").join(parts))


def _status_of(rt: Runtime, m365_id: str, link: Link | None) -> Markup:
    """The user's status in 3CX now, and from the presence state the one the connector applied and will restore."""
    current: object
    if link is None:
        current = "not linked"
    else:
        try:
            tcx_user = rt.tcx.get_user(link.tcx_user_id, select=("CurrentProfileName",))
        except Exception as error:  # 3CX not answering: said, and the options still show
            current = f"not readable ({one_line(error)})"
        else:
            current = "no such 3CX user" if tcx_user is None else tcx_user.current_profile_name
    presence = rt.state.get_presence(m365_id)
    applied = presence.applied_status if presence is not None else None
    restore = presence.previous_status if presence is not None else None
    headings = ("Now in 3CX", "Applied by the connector", "Restored when the event ends")
    now = table(headings, [(current, applied, restore)])
    changes = [
        (entry.at.strftime("%Y-%m-%d %H:%M UTC"), entry.action, entry.status_from, entry.status_to)
        for entry in reversed(presence.recent_changes if presence is not None else [])
    ]
    history = table(("When", "Action", "From", "To"), changes) if changes else Markup("<p>None yet.</p>")
    return now + Markup("<h2>Recent status changes</h2>") + history


def _set_options(ctx: _Context, request: ConsoleRequest) -> ConsoleResponse:
    form = request.form()
    upn = form.get("upn", "")
    values = {"default": None, "on": True, "off": False}
    assignments: dict[str, bool | None] = {}
    for name in OPTION_NAMES:
        if name in form:
            if form[name] not in values:
                return _bare(400, f"{name} must be default, on or off")
            assignments[name] = values[form[name]]
    try:
        set_user_options(ctx.rt, user_reference(upn, "upn"), assignments)
    except MalformedId as error:
        return ctx.page("Not a user", "users", notice(str(error), "error"), 400)
    except UnknownUser as error:
        return ctx.page("Unknown user", "users", notice(str(error), "error"), 404)
    log_event(
        "console_options_set",
        logging.INFO,
        upn=upn,
        user=ctx.principal.name,
        **{name: "default" if value is None else str(value).lower() for name, value in assignments.items()},
    )
    return _user(ctx, ConsoleRequest("GET", "user", request.headers, {"upn": upn}), notice("Options saved.", "ok"))


_PAGES: dict[str, Callable[[_Context, ConsoleRequest], ConsoleResponse]] = {
    "overview": _overview,
    "runs": _runs,
    "held": _held,
    "decide": _decide,
    "charts": _charts,
    "users": _users,
    "user": _user,
    "options": _set_options,
}
