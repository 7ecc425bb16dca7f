"""Changelist cells built with format_html instead of a template per cell: the queue renders
hundreds of cells per page, and a template render each was most of its server time. The
markup and classes are those of Unfold's own header and label templates, so it looks the same.
"""

from django.utils.html import format_html

# The badge and note cells are shared with the payments pages (backoffice/admin_cells.py).
from backoffice.admin_cells import BADGE_CLASSES, badge, stacked, with_note  # noqa: F401


def two_lines(top, bottom=""):
    if not bottom:
        return format_html(
            '<span class="flex flex-col text-start"><strong class="block font-normal">{}'
            "</strong></span>",
            top,
        )
    return format_html(
        '<span class="flex flex-col text-start"><strong class="block font-normal">{}</strong>'
        '<p class="text-base-500">{}</p></span>',
        top,
        bottom,
    )


def link_pair(first_url: str, first: str, second_url: str, second: str):
    return format_html(
        '<span class="flex gap-3 whitespace-nowrap">'
        '<a class="text-primary-600 underline" href="{}">{}</a>'
        '<a class="text-red-600 underline" href="{}">{}</a></span>',
        first_url,
        first,
        second_url,
        second,
    )
