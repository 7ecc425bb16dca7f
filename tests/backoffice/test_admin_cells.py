"""Clipped changelist cells: each line cut to its column by CSS, the whole text in a plain
tooltip (markup such as the Blocked badge never leaks into it)."""

from django.utils.html import format_html

from backoffice.admin_cells import badge, stacked, two_line, with_note


def test_a_clipped_line_keeps_its_whole_text_in_a_plain_tooltip():
    cell = two_line(
        "maria.fernanda.lopez@university-example.com",
        format_html("{}<b>{}</b>", badge("Blocked", "danger"), "María <López>"),
        clip=True,
    )
    assert 'class="flex flex-col text-start cell-clip"' in cell
    assert 'title="maria.fernanda.lopez@university-example.com"' in cell
    assert 'title="BlockedMaría &lt;López&gt;"' in cell
    assert "<b>María &lt;López&gt;</b>" in cell


def test_narrow_clip_and_unclipped_cells():
    assert "cell-clip cell-clip--narrow" in two_line("4d 3h", "support.agent", clip="narrow")
    plain = two_line("#12", "Duplicate")
    assert "cell-clip" not in plain and "title=" not in plain


def test_a_note_under_a_badge_and_stacked_badges():
    note = with_note(badge("Failed", "danger"), "Stripe refused the refund", clip=True)
    assert 'title="Stripe refused the refund"' in note and "cell-clip--narrow" in note
    both = stacked(badge("Urgent", "danger"), "", badge("Pending", "warning"))
    assert both.count('<span class="inline-block') == 2
