"""One self-contained HTML page: blocks, sections and rendering, shared by every ferlab page.

Blocks are plain dicts (``{"kind": "p", "text": ...}``) made by the helpers here, so any caller
(the report, ``ferlab demo``) builds pages the same way and every ferlab page looks the same.
Every figure is a PNG inlined as a ``data:`` URI and the CSS is inlined too, so the file opens
offline, can be mailed, reads on a phone and prints.

Example:
    >>> s = Section("faces", "Faces").add(para("Two faces."))
    >>> "<p>Two faces.</p>" in render_page("Demo", [s])
    True
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .. import __version__
from ..errors import FerlabError
from ..io_utils import write_text
from ..plots import plt  # importing plots selects the Agg backend first
from .text import check_lang, tr

TEMPLATES = Path(__file__).parent / "templates"

Block = dict[str, Any]


@dataclass
class Section:
    """One ``<section>`` of a page: an anchor id, a heading and its blocks in order."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block | None) -> Section:
        """Append ``blocks`` (``None`` ones are skipped) and return the section."""
        self.blocks.extend(b for b in blocks if b is not None)
        return self


def h3(text: str) -> Block:
    return {"kind": "h3", "text": text}


def para(text: str) -> Block:
    return {"kind": "p", "text": text}


def note(text: str) -> Block:
    """A short highlighted remark: why a part of a section is missing, or what to be aware of."""
    return {"kind": "note", "text": text}


def observations(items: Sequence[str]) -> Block | None:
    """A bullet list of generated observations (``None`` when there are none)."""
    items = [s for s in items if s]
    return {"kind": "obs", "items": items} if items else None


def png_bytes(source: bytes | str | Path | Any, dpi: int = 110) -> bytes:
    """PNG bytes of ``source``: PNG bytes, a PNG file, a PIL image or a matplotlib figure.

    A matplotlib figure is closed after it is drawn.
    """
    if isinstance(source, bytes):
        return source
    if isinstance(source, (str, Path)):
        return Path(source).read_bytes()
    if hasattr(source, "savefig"):
        buf = io.BytesIO()
        source.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(source)
        return buf.getvalue()
    if hasattr(source, "save"):  # a PIL image
        buf = io.BytesIO()
        source.save(buf, format="PNG")
        return buf.getvalue()
    raise TypeError(f"cannot make a PNG of {type(source).__name__}")


def figure(source: bytes | str | Path | Any, caption: str = "", alt: str = "",
           wide: bool = False) -> Block:
    """An inlined image with a caption. ``source`` as in :func:`png_bytes`.

    Raises:
        FerlabError: ``source`` is not a PNG image.

    Example:
        >>> fig = plt.figure(); _ = plt.plot([1, 2])  # doctest: +SKIP
        >>> section.add(figure(fig, "a line"))  # doctest: +SKIP
    """
    data = png_bytes(source)
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise FerlabError(f"figure {caption or alt!r}: not a PNG image")
    # The PNG header holds the size; giving it to <img> keeps the layout still while loading.
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return {"kind": "figure", "src": "data:image/png;base64," + base64.b64encode(data).decode(),
            "caption": caption, "alt": alt or caption, "wide": wide, "width": width,
            "height": height}


def figures(*figs: Block) -> Block:
    """Figures side by side (one column on a phone)."""
    return {"kind": "figures", "figures": list(figs)}


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> Block:
    """A table; the first cell of each row is its heading, numbers are right-aligned."""
    return {"kind": "table", "header": list(header), "rows": [list(r) for r in rows],
            "caption": caption}


def columns(*cols: Sequence[Block]) -> Block:
    """Blocks in columns side by side (stacked on a phone)."""
    return {"kind": "columns", "columns": [list(c) for c in cols]}


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)


def render_page(title: str, sections: Sequence[Section], lang: str = "en", *,
                meta: Sequence[str] = (), footer: str | None = None) -> str:
    """One self-contained HTML page: the CSS inlined, images already inlined in the blocks.

    Args:
        title: page title and ``<h1>``.
        sections: the page's sections in order; a table of contents links them when there are
            two or more.
        lang: ``en`` or ``zh`` (the page's ``lang`` attribute and its fixed words).
        meta: short lines under the title (what the page was made from).
        footer: the footer line (default: which ferlab made the page, and when).

    Raises:
        ValueError: two sections share an id.

    Example:
        >>> s = Section("faces", "Faces").add(para("Two faces."), figure("faces.png"))
        ... # doctest: +SKIP
        >>> write_page("page.html", render_page("Demo", [s]))  # doctest: +SKIP
    """
    lang = check_lang(lang)
    ids = [s.id for s in sections]
    if len(set(ids)) != len(ids):
        raise ValueError(f"section ids must be unique, got {ids}")
    if footer is None:
        now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        footer = tr(lang, "generated", version=__version__, date=now)
    # Our own stylesheet, trusted: escaping it would turn its quotes into entities, which CSS
    # inside <style> does not decode (the font list would be dropped).
    css = Markup((TEMPLATES / "report.css").read_text(encoding="utf-8"))
    return _environment().get_template("page.html.j2").render(
        title=title, sections=sections, lang="zh-CN" if lang == "zh" else lang, meta=list(meta),
        footer=footer, css=css, contents=tr(lang, "contents"), version=__version__)


def write_page(path: str | Path, html: str) -> Path:
    """Write ``html`` to ``path`` atomically (UTF-8)."""
    return write_text(path, html)
