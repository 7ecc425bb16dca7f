"""The Outbox: django-post-office's e-mails in Unfold's look, read-only, with "resend".

post_office's own admin is replaced, not extended: its resend is a GET link that sends at
once with no audit, its requeue action updates rows unaudited, and its e-mails are editable.
Here an e-mail is only viewed; resend is POST (the changelist's bulk action, or the button on
the e-mail's page), needs backoffice.resend_customeremail, and is audited
(backoffice/outbox.py customer_email_resend). It queues the e-mail: the schedule sends it."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST
from post_office.models import STATUS, Attachment, Email, EmailTemplate, Log
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action, display

from .admin_cells import badge, with_note
from .audit import client_info_from_request
from .outbox import customer_email_resend

PERM_RESEND = "backoffice.resend_customeremail"
RESENT = "Queued again: {count} e-mail(s); the outbox schedule sends them."

STATUS_COLOURS = {
    STATUS.sent: "success",
    STATUS.failed: "danger",
    STATUS.queued: "info",
    STATUS.requeued: "warning",
}


class LogInline(TabularInline):
    """Every failed attempt (POST_OFFICE["LOG_LEVEL"] = 1), newest first."""

    model = Log
    fields = ["date", "status", "exception_type", "message"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "attempt"
    verbose_name_plural = "failed attempts"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OutboxEmailAdmin(ModelAdmin):
    list_display = [
        "id",
        "created",
        "recipient",
        "subject",
        "status_cell",
        "kind",
        "cause",
        "last_updated",
    ]
    list_display_links = ["id", "subject"]
    list_filter = ["status", "customer_email__kind", "created"]
    search_fields = ["to", "subject"]
    list_select_related = ["customer_email"]
    ordering = ["-created", "-id"]
    show_full_result_count = False
    actions = ["resend_selected"]
    fields = [
        "recipient",
        "from_email",
        "subject",
        "status_detail",
        "kind",
        "cause",
        "created",
        "last_updated",
        "scheduled_time",
        "number_of_retries",
        "attachments_list",
        "message",
    ]
    readonly_fields = fields
    inlines = [LogInline]
    # post_office ships admin/post_office/email/change_form.html, which links its GET resend.
    change_form_template = "admin/change_form.html"
    change_form_after_template = "backoffice/admin/outbox_resend.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_resend_permission(self, request, obj=None):
        return request.user.has_perm(PERM_RESEND)

    def get_urls(self):
        return [
            path(
                "<int:pk>/resend/",
                self.admin_site.admin_view(require_POST(self.resend_view)),
                name="post_office_email_resend",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_resend": self.has_resend_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    # --- cells ---

    @display(description="To", ordering="to")
    def recipient(self, obj):
        return ", ".join(obj.to)

    def _status(self, obj):
        cell = badge(obj.get_status_display(), STATUS_COLOURS.get(obj.status, ""))
        if obj.status == STATUS.requeued and obj.scheduled_time:
            note = f"retry {obj.number_of_retries} at {obj.scheduled_time:%Y-%m-%d %H:%M} UTC"
            return with_note(cell, note)
        return cell

    @display(description="Status", ordering="status")
    def status_cell(self, obj):
        return self._status(obj)

    @display(description="Status")
    def status_detail(self, obj):
        return self._status(obj)

    @display(description="Kind", ordering="customer_email__kind")
    def kind(self, obj):
        customer_email = getattr(obj, "customer_email", None)
        return customer_email.get_kind_display() if customer_email else "-"

    @display(description="Cause")
    def cause(self, obj):
        customer_email = getattr(obj, "customer_email", None)
        if customer_email is None:
            return "-"
        app_label, model = customer_email.target_type.split(".", 1)
        label = customer_email.target_repr or customer_email.target_id
        try:
            url = reverse(f"admin:{app_label}_{model}_change", args=[customer_email.target_id])
        except NoReverseMatch:
            return label
        return format_html('<a href="{}" class="text-primary-600">{}</a>', url, label)

    @display(description="Attachments")
    def attachments_list(self, obj):
        return ", ".join(a.name for a in obj.attachments.all()) or "-"

    # --- resend (POST only) ---

    @action(description="Resend selected e-mails", permissions=["resend"])
    def resend_selected(self, request, queryset):
        count = 0
        for email in queryset:
            try:
                customer_email_resend(
                    email=email,
                    acting_user=request.user,
                    client=client_info_from_request(request),
                )
            except ValueError as exc:
                self.message_user(request, f"#{email.pk}: {exc}", messages.ERROR)
            else:
                count += 1
        if count:
            self.message_user(request, RESENT.format(count=count), messages.SUCCESS)

    def resend_view(self, request, pk):
        if not self.has_resend_permission(request):
            raise PermissionDenied
        email = get_object_or_404(Email, pk=pk)
        try:
            customer_email_resend(
                email=email, acting_user=request.user, client=client_info_from_request(request)
            )
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, RESENT.format(count=1), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:post_office_email_change", args=[pk]))


# `post_office` is before `backoffice` in INSTALLED_APPS: its admin module has run already.
for model in (Email, Log, Attachment, EmailTemplate):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
admin.site.register(Email, OutboxEmailAdmin)
