"""Text from data (names, references, server error messages) in markdown: shown as text, never as markup.

Every markdown writer (run and suite reports, the leaderboard, the regression and runs sections
of the Prefect artifacts) passes what it did not write itself through ``text`` or ``code``: a
model named ``<img src=x onerror=...>`` or an error carrying ``[click](http://...)`` reads as
those characters in any Markdown viewer (CommonMark backslash escapes) and in the HTML page.
"""

from __future__ import annotations

import re

#: ASCII punctuation that can start markup in CommonMark or GitHub tables (HTML, links, emphasis, code);
#: ``_`` between letters or digits never does (``fleurs-en_us`` stays as the seeds write it).
_SPECIAL = re.compile(r"([\\`*{}\[\]()<>#!|~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def one_line(value: object) -> str:
    """``value`` as one line: newlines and runs of whitespace become one space."""
    return " ".join(str(value).split())


def text(value: object) -> str:
    """``value`` as literal markdown text on one line."""
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), one_line(value))


def code(value: object) -> str:
    """``value`` as an inline code span (literal by nature); its backticks cannot end it (in a table, ``cell``
    escapes its pipes)."""
    return "`" + one_line(value).replace("`", "'") + "`"


def cell(value: object) -> str:
    """A table cell: one line, every ``|`` not already escaped escaped (our own text may hold ``|``)."""
    return re.sub(r"(?<!\\)\|", r"\\|", one_line(value))
