"""HTML building blocks of the report: escaping, tables, figures and the page itself.

Everything is inline: the stylesheet sits in a ``<style>`` element and every image is a
``data:image/png;base64`` URI, so the file opens anywhere without a network (no scripts,
no external stylesheets, fonts or images).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class Png:
    """One rendered figure: ``name`` is its file name beside the report, ``data`` the PNG bytes."""

    name: str
    data: bytes
    alt: str


@dataclass(frozen=True)
class Section:
    """One ``<section id=...>`` of the report, with the figures its body shows."""

    id: str
    title: str
    body: str
    figures: tuple[Png, ...] = ()


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers to ``digits`` significant digits; None as an en dash; anything else as text."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def paragraph(text: str, css_class: str = "") -> str:
    """A ``<p>`` holding already-escaped ``text``."""
    attr = f' class="{css_class}"' if css_class else ""
    return f"<p{attr}>{text}</p>"


def table(headers: Sequence[str] | None, rows: Iterable[Sequence[Any]], css_class: str = "") -> str:
    """A ``<table>`` (no header row when ``headers`` is None); cells are formatted with ``fmt`` and escaped."""
    head = "" if headers is None else "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead>"
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{css_class}"' if css_class else ""
    return f"<table{attr}>{head}<tbody>{body}</tbody></table>"


def figure(png: Png, caption: str) -> str:
    """An ``<img>`` with its PNG embedded as a data URI, and an escaped caption naming the file."""
    uri = "data:image/png;base64," + base64.b64encode(png.data).decode("ascii")
    return (f'<figure><img src="{uri}" alt="{esc(png.alt)}">'
            f"<figcaption>{esc(caption)} <span class=\"file\">({esc(png.name)})</span></figcaption></figure>")


def section_html(section: Section) -> str:
    return f'<section id="{esc(section.id)}"><h2>{esc(section.title)}</h2>{section.body}</section>'


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       color: #1d2330; background: #f4f5f7; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 3rem; background: #fff; }
h1 { margin: 0 0 .2rem; font-size: 1.8rem; }
h2 { margin: 0 0 .6rem; font-size: 1.3rem; border-bottom: 2px solid #dde1e8; padding-bottom: .25rem; }
section { margin-top: 2rem; }
nav { font-size: .9rem; margin: .8rem 0 0; }
nav a { margin-right: .9rem; color: #2859a8; text-decoration: none; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .88rem; }
th, td { border: 1px solid #dde1e8; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
tbody tr:nth-child(even) { background: #f8f9fb; }
table.wide { width: 100%; }
figure { margin: .8rem 0; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid #e4e7ec; }
figcaption { font-size: .85rem; color: #4a5364; margin-top: .3rem; }
figcaption .file { color: #8a93a3; }
pre { background: #f6f8fa; border: 1px solid #dde1e8; padding: .8rem; overflow: auto; font-size: .82rem;
      margin: .6rem 0; }
pre.spec { max-height: 26rem; }
.columns > div { min-width: 0; }
.columns > div.grow { flex: 1; }
h3 { font-size: 1.05rem; margin: 1rem 0 .2rem; }
.facts td:first-child { font-weight: 600; white-space: nowrap; }
.note { color: #4a5364; font-style: italic; }
.columns { display: flex; gap: 2rem; flex-wrap: wrap; align-items: flex-start; }
details summary { cursor: pointer; color: #2859a8; }
"""


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole HTML document: ``title`` as ``<h1>``, ``subtitle`` (HTML), contents line, sections."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(section_html(s) for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>{esc(title)}</h1>{subtitle}<nav>{nav}</nav>{body}</main></body></html>\n"
    )
