"""Sphinx extension: every page loads each script once, the bibliography is a valid list, and
the theme's buttons have names that contain their visible text.

sphinx-thebe registers its one-line configuration script (``const THEBE_JS_URL = ...``) once per
``env-before-read-docs`` event, and jupyter-book's build fires that event for more than one
reading pass, so pages carried the ``const`` twice and the second copy threw
"Identifier 'THEBE_JS_URL' has already been declared" in every reader's console. The
``html-page-context`` hook below keeps the first copy of every script (same file, same inline
body) and drops the repeats.

docutils writes a bibliography as ``<div role="list" class="citation-list">`` whose children have
the deprecated role ``doc-biblioentry`` instead of ``listitem``, which screen readers announce as a
broken list (axe-core: aria-required-children, critical). The second hook removes both roles, so
the bibliography reads as the plain sequence of entries it is.

pydata-sphinx-theme 0.17.1 names its search button "Search" while it shows "Search Ctrl+K", and
gives the colour-mode icons titles ("Light", "Dark", ...) that its name "Color mode" does not
contain: both break WCAG 2.5.3 "label in name" (axe: label-content-name-mismatch, serious). These
buttons come from the theme's templates, outside the page body, so ``fix_theme_buttons`` rewrites
them in the written pages once the build has finished: the search button is named by its visible
text, and the icons are hidden from assistive technology.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx


def _script_key(script: Any) -> tuple[str, str]:
    """(file name, inline body) of a script entry: two entries with the same key are one script."""
    filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
    return str(filename), getattr(script, "attributes", {}).get("body", "")


def drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str,
                          context: dict[str, Any], doctree: Any) -> None:
    """Remove every repeated entry of ``context["script_files"]`` (first occurrence wins)."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in context.get("script_files", []):
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


_BROKEN_LIST_ROLES = re.compile(r'(<div)( role="list")( class="citation-list")|( role="doc-biblioentry")')


def drop_broken_list_roles(app: Sphinx, pagename: str, templatename: str,
                           context: dict[str, Any], doctree: Any) -> None:
    """Remove ``role="list"`` from citation lists and ``role="doc-biblioentry"`` from entries."""
    if "body" in context:
        context["body"] = _BROKEN_LIST_ROLES.sub(
            lambda match: f"{match[1]}{match[3]}" if match[1] else "", context["body"])


_THEME_BUTTON_FIXES = (
    (re.compile(r'(<button class="btn search-button-field[^"]*"[^>]*?) aria-label="[^"]*"'), r"\1"),
    (re.compile(r'(<i class="theme-switch [^"]*" data-mode="\w+")\s+title="[^"]*"'), r'\1 aria-hidden="true"'),
)


def fix_theme_button_markup(html: str) -> str:
    """The page with the search and colour-mode buttons' accessible names fixed (see above)."""
    for pattern, replacement in _THEME_BUTTON_FIXES:
        html = pattern.sub(replacement, html)
    return html


def fix_theme_buttons(app: Sphinx, exception: Exception | None) -> None:
    """Apply :func:`fix_theme_button_markup` to every HTML page the build wrote."""
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        fixed = fix_theme_button_markup(text)
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("build-finished", fix_theme_buttons)
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    app.connect("html-page-context", drop_broken_list_roles, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
