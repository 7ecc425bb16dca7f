"""The record of Stripe sync runs and where each object type stands. Read-only: runs are
started by the command, the schedule or a person at a shell (management/jobs.py)."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeDateTimeFilter
from unfold.decorators import display

from backoffice.admin_cells import badge, two_line, with_note
from backoffice.changelist import ChangelistMixin
from payments.models import SyncRun, SyncState

# Shown for a type a run never reached (it stopped early), and for runs recorded before
# outcomes per type existed.
NOT_ATTEMPTED = "—"

SYNC_STATUS_COLOURS = {
    SyncRun.Status.RUNNING: "info",
    SyncRun.Status.SUCCEEDED: "success",
    SyncRun.Status.FAILED: "danger",
    SyncRun.Status.SKIPPED: "warning",
}


def sync_failed_badge(request) -> str | None:
    """Sidebar badge: shown while the latest (non-skipped) sync run failed. One indexed
    query."""
    latest = (
        SyncRun.objects.exclude(status=SyncRun.Status.SKIPPED)
        .order_by("-started_at", "-id")
        .values_list("status", flat=True)
        .first()
    )
    return "failed" if latest == SyncRun.Status.FAILED else None


class ReadOnlyAdmin(ChangelistMixin, ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    # Chosen to fit 1280 px with the sidebar open (tests/e2e/test_layouts.py): how the run
    # was started and how long it took under its number, the error under the status, the API
    # calls under the objects changed; the counts per type cut to the column's width.
    list_display = [
        "run_cell",
        "status_badge",
        "started_at",
        "changed_cell",
        "counts_summary",
    ]
    list_display_links = ["run_cell", "status_badge"]
    list_filter = [
        ("status", ChoicesDropdownFilter),
        ("mode", ChoicesDropdownFilter),
        ("trigger", ChoicesDropdownFilter),
        ("started_at", RangeDateTimeFilter),
    ]
    list_filter_submit = True
    date_hierarchy = None
    ordering = ["-started_at", "-id"]
    show_full_result_count = False
    fields = [
        "status",
        "mode",
        "trigger",
        "since",
        "started_at",
        "finished_at",
        "duration_ms",
        "objects_changed",
        "counts_table",
        "refused_table",
        "api_calls",
        "api_retries",
        "pages",
        "error",
    ]
    readonly_fields = fields

    @display(description="Run", ordering="id")
    def run_cell(self, obj):
        return two_line(
            f"#{obj.pk} · {self.duration(obj)}",
            f"{obj.get_mode_display()}, {obj.get_trigger_display()}".lower(),
            clip=True,
        )

    @display(description="Status", ordering="status")
    def status_badge(self, obj):
        cell = badge(
            obj.get_status_display().split(" (")[0], SYNC_STATUS_COLOURS.get(obj.status, "")
        )
        return with_note(cell, obj.error, clip=True) if obj.error else cell

    @display(description="Changed", ordering="objects_changed")
    def changed_cell(self, obj):
        return two_line(f"{obj.objects_changed:,}", f"{obj.api_calls:,} calls")

    @display(description="Duration", ordering="duration_ms")
    def duration(self, obj):
        if obj.duration_ms is None:
            return "—"
        return f"{obj.duration_ms / 1000:.1f} s"

    # The header is the legend; each line names its type.
    @display(description="+new ~changed =same")
    def counts_summary(self, obj):
        parts = [
            f"{kind.replace('_', ' ')} +{c.get('created', 0)} ~{c.get('updated', 0)} "
            f"={c.get('unchanged', 0)}"
            for kind, c in (obj.counts or {}).items()
            if any(c.values())
        ]
        # One line per type, cut at the column's width; the run's page has the table.
        return two_line(parts[0], "; ".join(parts[1:]), clip=True) if parts else "—"

    @display(description="Objects per type")
    def counts_table(self, obj):
        if not obj.counts:
            return "—"
        outcomes = obj.outcomes or {}
        rows = format_html_join(
            "",
            "<tr><td class='pr-4'>{}</td><td class='pr-4'>{}</td>"
            "<td class='pr-4 text-right'>{}</td><td class='pr-4 text-right'>{}</td>"
            "<td class='pr-4 text-right'>{}</td><td class='pr-4 text-right'>{}</td>"
            "<td>{}</td></tr>",
            (
                (
                    kind.replace("_", " "),
                    outcomes.get(kind, {}).get("status", NOT_ATTEMPTED),
                    c.get("created", 0),
                    c.get("updated", 0),
                    c.get("unchanged", 0),
                    c.get("skipped", 0),
                    outcomes.get(kind, {}).get("error", ""),
                )
                for kind, c in obj.counts.items()
            ),
        )
        return format_html(
            "<table><thead><tr><th class='pr-4 text-left'>Type</th><th class='pr-4 text-left'>"
            "Outcome</th><th class='pr-4'>Created</th><th class='pr-4'>Updated</th>"
            "<th class='pr-4'>Unchanged</th><th class='pr-4'>Skipped</th>"
            "<th class='text-left'>Error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @display(description="Refused objects")
    def refused_table(self, obj):
        """Objects the boundary checks refused (payments/validation.py), with why."""
        rows = [
            (kind.replace("_", " "), object_id or "(no id)", error)
            for kind, outcome in (obj.outcomes or {}).items()
            for object_id, error in (outcome.get("invalid") or {}).items()
        ]
        if not rows:
            return "—"
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join(
                "", "<tr><td class='pr-4'>{}</td><td class='pr-4'>{}</td><td>{}</td></tr>", rows
            ),
        )


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyAdmin):
    list_display = ["object_type", "watermark", "resuming", "updated_at"]
    ordering = ["object_type"]

    @display(description="Interrupted pass", boolean=True)
    def resuming(self, obj):
        return bool(obj.cursor)
