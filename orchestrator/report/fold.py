"""A folded part of the report: a one-line title (plain text) over a Markdown body.

The Markdown report writes each as a ``<details>`` block (GitHub, GitLab and most viewers fold it; a
plain-text reader still sees the title line first); the HTML report renders the same body inside a
``<details>`` element. Titles are escaped here for HTML, since ``<summary>`` is HTML in both.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.report.escape import html_text, inline

#: Characters of a fold's title.
TITLE_LIMIT = 200


@dataclass(frozen=True)
class Fold:
    #: Plain text, possibly from the session (escaped wherever it is written).
    title: str
    #: Markdown, already escaped by the sections that made it.
    body: str


def markdown_fold(fold: Fold) -> str:
    # The blank line after </summary> is what makes viewers render the body as Markdown again.
    return (f"<details><summary>{html_text(fold.title, TITLE_LIMIT)}</summary>\n\n"
            f"{fold.body.rstrip()}\n\n</details>\n")


def markdown_section(fold: Fold) -> str:
    """The fold as a plain section, for viewers that drop raw HTML (rich's terminal Markdown)."""
    return f"## {inline(fold.title, TITLE_LIMIT)}\n\n{fold.body.rstrip()}\n"
