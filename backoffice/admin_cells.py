"""Changelist cells built with format_html instead of one template render per cell.

On a 50-row page, Unfold's per-cell templates (two-line "header" cells, the action checkbox)
cost more than every database query of the page together; these produce the same markup.
"""

import html

from django.contrib.admin import helpers
from django.utils.html import escape, format_html, format_html_join, strip_tags
from django.utils.safestring import SafeString, mark_safe
from unfold.admin import checkbox
from unfold.decorators import display


def _tooltip(markup) -> str:
    """A cell line's text for its title attribute: tags dropped, entities decoded (format_html
    escapes it once more)."""
    return html.unescape(strip_tags(str(markup)))


# two_line(clip=...) -> the classes of backoffice/static/backoffice/layouts.css that cut it.
CLIP_CLASSES = {True: "cell-clip", "narrow": "cell-clip cell-clip--narrow"}


def two_line(title, subtitle="", *, clip: bool | str = False) -> SafeString:
    """The markup of Unfold's `@display(header=True)` cell: a title over a muted subtitle.

    clip=True keeps each line on one line, cut with an ellipsis at the column's width
    (`.cell-clip` in backoffice/static/backoffice/layouts.css) with the whole text in its
    tooltip: a long e-mail or product name never pushes the decision columns out of view.
    clip="narrow" cuts sooner, for a line under a short value (a name under an age)."""
    if not clip:
        return format_html(
            '<span class="flex flex-col text-start"><strong class="block font-normal">{}</strong>'
            "{}</span>",
            title,
            format_html('<p class="text-base-500">{}</p>', subtitle) if subtitle else "",
        )
    return format_html(
        '<span class="flex flex-col text-start {}"><strong class="block font-normal" '
        'title="{}">{}</strong>{}</span>',
        CLIP_CLASSES[clip],
        _tooltip(title),
        title,
        format_html('<p class="text-base-500" title="{}">{}</p>', _tooltip(subtitle), subtitle)
        if subtitle
        else "",
    )


# Unfold's label colours (the classes of its unfold/helpers/label.html), for cells that put a
# badge beside other markup, which `@display(label=...)` cannot.
BADGE_CLASSES = {
    "info": "bg-blue-100 text-blue-700 dark:bg-blue-500/20 dark:text-blue-400",
    "danger": "bg-red-100 text-red-700 dark:bg-red-500/20 dark:text-red-400",
    "warning": "bg-orange-100 text-orange-700 dark:bg-orange-500/20 dark:text-orange-400",
    "success": "bg-green-100 text-green-700 dark:bg-green-500/20 dark:text-green-400",
    "primary": "bg-primary-100 text-primary-700 dark:bg-primary-500/20 dark:text-primary-400",
    "": "bg-base-500/8 text-base-700 dark:bg-base-500/20 dark:text-base-200",
}


def badge(text: str, variant: str = "") -> SafeString:
    return format_html(
        '<span class="inline-block font-semibold rounded-default text-[11px] uppercase '
        'whitespace-nowrap h-6 leading-6 px-2 {}">{}</span>',
        BADGE_CLASSES.get(variant, BADGE_CLASSES[""]),
        text,
    )


def with_note(cell, note: str, *, clip=False) -> SafeString:
    """A cell (a badge, say) with a short grey line of text under it; clip=True cuts the note
    at the column's width, the whole of it in the tooltip."""
    if clip:
        return format_html(
            '<span class="flex flex-col items-start gap-1 cell-clip cell-clip--narrow">{}'
            '<span class="text-xs text-base-500" title="{}">{}</span></span>',
            cell,
            note,
            note,
        )
    return format_html(
        '<span class="flex flex-col items-start gap-1">{}<span class="text-xs text-base-500">{}'
        "</span></span>",
        cell,
        note,
    )


def stacked(*cells) -> SafeString:
    """Badges one over the other in one column (priority over status, say)."""
    return format_html(
        '<span class="flex flex-col items-start gap-1">{}</span>',
        format_html_join("", "{}", ((cell,) for cell in cells if cell)),
    )


class FastActionCheckboxMixin:
    """Renders the row checkbox once and substitutes the primary key per row."""

    _checkbox_markup: str | None = None

    @display(description=mark_safe(checkbox.render("action_toggle_all", 1)))
    def action_checkbox(self, obj) -> SafeString:
        if FastActionCheckboxMixin._checkbox_markup is None:
            FastActionCheckboxMixin._checkbox_markup = checkbox.render(
                helpers.ACTION_CHECKBOX_NAME, "__pk__"
            )
        return mark_safe(
            FastActionCheckboxMixin._checkbox_markup.replace("__pk__", escape(str(obj.pk)))
        )
