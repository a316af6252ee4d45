"""``ferlab report``: run folders in, one self-contained HTML page out.

The package, in the order a page is made:

* ``page``: blocks (:func:`para`, :func:`figure`, :func:`table`, ...), :class:`Section`,
  :func:`render_page` and :func:`write_page`, shared with ``ferlab demo``;
* ``context``: the report's inputs, each run folder read once, the faces and their evaluations;
* ``sections``, ``results``, ``explanations``: one function per section of the page;
* ``figures``, ``layers``, ``numbers``: the report's figures, layer table and the arithmetic
  behind its observations; ``text``: its words in English and Chinese;
* ``build``: :func:`build_report` / :func:`write_report`, the sections in page order.
"""

from .build import SECTION_IDS, SECTIONS, build_report, write_report
from .page import (
    Section,
    columns,
    figure,
    figures,
    h3,
    note,
    observations,
    para,
    render_page,
    table,
    write_page,
)

__all__ = [
    "SECTIONS", "SECTION_IDS", "Section", "build_report", "columns", "figure", "figures", "h3",
    "note", "observations", "para", "render_page", "table", "write_page", "write_report",
]
