"""How wide a table the book shows renders, estimated without a browser (none is installed
here): an upper bound on the pixels the HTML of a pandas Styler needs, to compare with the
book's content column in a 1,400-pixel browser window.

The content column (:func:`content_width`) at a window ``W`` pixels wide, from the CSS the
book ships with (sphinx-book-theme 1.3 on pydata-sphinx-theme 0.17, and
``book/_static/sgquant.css``): the window less a 15-px vertical scrollbar, less the
``html`` margin (pydata: 0.1875rem a side); the primary sidebar takes 20% of that
(sphinx-book-theme: ``flex-basis: 20%`` from 992 px up); the article column is the rest,
at most 80rem (``sgquant.css``), less its 2rem padding a side (sphinx-book-theme
``.bd-article``) and the 1em left padding of a cell's output (myst-nb ``.cell_output``);
1rem = 16 px (the theme leaves the browser's base size).

A table's width (:func:`table_width`): table text is 0.8rem (12.8 px, ``sgquant.css``);
data cells never wrap (``td { white-space: nowrap }``), so a column is at least as wide as
its longest cell; header cells wrap at spaces, so a header needs its longest word, in bold;
a header spanning several columns widens them when its longest word is wider than they
are together. Text is measured with DejaVu Sans (matplotlib's copy), wider than the
system-ui fonts browsers use (Segoe UI, San Francisco, Roboto, Cantarell), so the estimate
errs wide. Each cell adds its padding (0.6em a side, :func:`sgquant.plots.table`) and
1 px of border.
"""
from __future__ import annotations

from functools import lru_cache
from html.parser import HTMLParser

REM = 16.0
#: Table text size (px): ``div.cell_output table { font-size: 0.8rem }``.
FONT_PX = 0.8 * REM
#: Horizontal padding and border of one cell (px).
CELL_EXTRA = 2 * 0.6 * FONT_PX + 1.0


def content_width(window: float = 1400.0) -> float:
    """Pixels the book's article column leaves a cell's output in a ``window``-pixel-wide
    browser window (module docstring)."""
    page = window - 15.0 - 2 * 0.1875 * REM
    article = min(page * (1 - 0.20), 80 * REM)
    return article - 2 * 2 * REM - 1 * REM


@lru_cache(maxsize=None)
def text_width(text: str, bold: bool = False) -> float:
    """Pixels of ``text`` in DejaVu Sans at the table's size."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    if not text:
        return 0.0
    prop = FontProperties(family="DejaVu Sans", size=FONT_PX, weight="bold" if bold else "normal")
    return float(TextToPath().get_text_width_height_descent(text, prop, ismath=False)[0])


class _Cells(HTMLParser):
    """The rows of an HTML table: ``(tag, colspan, text)`` per cell; captions skipped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[tuple[str, int, str]]] = []
        self._cell: "list | None" = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            span = int(dict(attrs).get("colspan") or 1)
            self._cell = [tag, span, ""]

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[2] += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None:
            self.rows[-1].append((self._cell[0], self._cell[1], self._cell[2].strip()))
            self._cell = None


def _need(tag: str, text: str) -> float:
    """The narrowest a cell can be: a data cell's whole text, a header's longest word."""
    if tag == "td":
        return text_width(text)
    return max((text_width(w, bold=True) for w in text.split()), default=0.0)


def table_width(html: str) -> float:
    """Estimated pixels the widest row of the table in ``html`` needs (module docstring)."""
    parser = _Cells()
    parser.feed(html)
    ncols = max((sum(span for _, span, _ in row) for row in parser.rows), default=0)
    cols = [0.0] * ncols
    spans = []
    for row in parser.rows:
        i = 0
        for tag, span, text in row:
            if span == 1:
                cols[i] = max(cols[i], _need(tag, text) + CELL_EXTRA)
            else:
                spans.append((i, span, _need(tag, text) + CELL_EXTRA))
            i += span
    for i, span, need in spans:  # a wide spanning header widens its columns evenly
        short = need - sum(cols[i:i + span])
        if short > 0:
            for j in range(i, i + span):
                cols[j] += short / span
    return sum(cols)
