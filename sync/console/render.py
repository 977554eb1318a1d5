"""HTML for the console: every value is escaped (markupsafe), no script, no inline style.

`Markup(template).format(...)` escapes each argument that is not Markup itself, so text from
Graph, 3CX or a run record (a display name, an error) can never become markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from markupsafe import Markup, escape

NAV = (
    ("overview", "Overview", ""),
    ("runs", "Runs", "/runs"),
    ("held", "Held back", "/held"),
    ("users", "Users", "/users"),
    ("charts", "Charts", "/charts"),
)
BASE = "/api/console"


def page(title: str, active: str, who: str, body: Markup, *, held: int = 0, scripts: tuple[str, ...] = ()) -> str:
    """A whole console page around `body`; `scripts` are files of the console's own (never inline)."""
    tags = Markup("").join(Markup('<script src="{}" defer></script>').format(src) for src in scripts)
    links = Markup("").join(
        Markup('<a href="{}"{}>{}{}</a>').format(
            BASE + path,
            Markup(' aria-current="page"') if name == active else Markup(""),
            label,
            Markup(' <span class="badge">{}</span>').format(held) if name == "held" and held else Markup(""),
        )
        for name, label, path in NAV
    )
    return str(
        Markup(
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>{title} · 3CX connector</title>"
            '<link rel="stylesheet" href="{base}/static/console.css"><link rel="icon" href="{base}/static/favicon.svg">'
            "{tags}</head><body>"
            '<header><strong>3CX ⇄ Microsoft 365 connector</strong><nav aria-label="Console">{links}</nav>'
            '<span class="who">Signed in as {who}</span></header><main><h1>{title}</h1>{body}</main></body></html>'
        ).format(title=title, base=BASE, tags=tags, links=links, who=who, body=body)
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, caption: str = "") -> Markup:
    """A table; cells that are Markup stay markup, anything else is escaped text."""
    head = Markup("").join(Markup('<th scope="col">{}</th>').format(h) for h in headers)
    body = Markup("").join(
        Markup("<tr>{}</tr>").format(Markup("").join(Markup("<td>{}</td>").format(_cell(cell)) for cell in row))
        for row in rows
    )
    if not body:
        body = Markup('<tr><td colspan="{}">None.</td></tr>').format(len(headers))
    cap = Markup("<caption>{}</caption>").format(caption) if caption else Markup("")
    return Markup("<table>{}<thead><tr>{}</tr></thead><tbody>{}</tbody></table>").format(cap, head, body)


def _cell(cell: object) -> Markup:
    if cell is None:
        return Markup("–")
    if isinstance(cell, Markup):
        return cell
    return escape(str(cell))


def bullet_list(items: Iterable[object], cls: str = "") -> Markup:
    entries = Markup("").join(Markup("<li>{}</li>").format(item) for item in items)
    if not entries:
        return Markup("")
    return Markup('<ul class="{}">{}</ul>').format(cls, entries) if cls else Markup("<ul>{}</ul>").format(entries)


def status(value: str) -> Markup:
    return Markup('<span class="status status-{}">{}</span>').format(value, value)


def notice(text: str, kind: str = "info") -> Markup:
    return Markup('<p class="notice notice-{}" role="status">{}</p>').format(kind, text)


def age(moment: datetime | None, now: datetime) -> str:
    """How long ago, coarsely ("3 min ago", "2 h ago", "5 d ago")."""
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def until(moment: datetime, now: datetime) -> str:
    left = moment - now
    if left < timedelta(0):
        return "expired"
    hours = int(left.total_seconds() // 3600)
    return f"in {hours // 24} d {hours % 24} h"


def hidden(name: str, value: str) -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(name, value)


def counts(values: dict[str, int]) -> str:
    return ", ".join(f"{name} {value}" for name, value in values.items() if value) or "nothing to do"
