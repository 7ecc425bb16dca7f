"""Changelist cells built with format_html instead of a template per cell: the queue renders
hundreds of cells per page, and a template render each was most of its server time. The
markup and classes are those of Unfold's own header and label templates, so it looks the same.
"""

from django.utils.html import format_html

BADGE_CLASSES = {
    "info": "bg-blue-100 text-blue-700 dark:bg-blue-500/20 dark:text-blue-400",
    "danger": "bg-red-100 text-red-700 dark:bg-red-500/20 dark:text-red-400",
    "warning": "bg-orange-100 text-orange-700 dark:bg-orange-500/20 dark:text-orange-400",
    "success": "bg-green-100 text-green-700 dark:bg-green-500/20 dark:text-green-400",
    "primary": "bg-primary-100 text-primary-700 dark:bg-primary-500/20 dark:text-primary-400",
    "": "bg-base-500/8 text-base-700 dark:bg-base-500/20 dark:text-base-200",
}


def badge(text: str, variant: str = ""):
    return format_html(
        '<span class="inline-block font-semibold rounded-default text-[11px] uppercase '
        'whitespace-nowrap h-6 leading-6 px-2 {}">{}</span>',
        BADGE_CLASSES.get(variant, BADGE_CLASSES[""]),
        text,
    )


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


def with_note(cell, note: str):
    """A cell (a badge, say) with a short grey line of text under it."""
    return format_html(
        '<span class="flex flex-col items-start gap-1">{}<span class="text-xs text-base-500">{}'
        "</span></span>",
        cell,
        note,
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
