"""What reports adds to the dispute page: the evidence packet (reports/dispute_evidence.py),
the evidence form pre-filled from it, and the three answers, each a POST through
payments.services.dispute_response:

- "Save evidence" stages the form in Stripe (`submit=false`); an invalid form is shown again
  with its errors and nothing is sent;
- "Submit evidence…" shows the staged evidence on a confirmation page, then submits it;
- "Accept dispute…" explains what accepting means on a confirmation page, then closes it.

GET on the action URLs answers 405; staff without payments.respond_dispute get 403 and see
no buttons. Added to the Dispute admin by reports/admin.py with admin_extend, so payments
never imports reports or refunds.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST
from unfold.widgets import (
    UnfoldAdminFileFieldWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanWidget,
)

from backoffice.audit import client_info_from_request
from backoffice.guard import (
    guard_admin_response,
    guard_money_action,
    money_action_give_back,
    step_up_redirect,
)
from payments.admin.dispute_page import deadline_countdown, reason_label
from payments.dispute_evidence import (
    ERROR_FILE_TOO_LARGE,
    EVIDENCE_FIELDS,
    FIELD_LABELS,
    FILE_FIELDS,
    FILE_MAX_BYTES,
    LONG_TEXT_FIELDS,
    TEXT_FIELDS,
    EvidenceFile,
    evidence_errors,
    format_size,
    text_limit,
)
from payments.models import Dispute
from payments.money import format_money
from payments.services.dispute_response import (
    AUDIT_ACTIONS,
    PERM_RESPOND,
    RESPONDABLE_STATUSES,
    DisputeResponseNotAllowed,
    dispute_accept,
    dispute_evidence_save,
    dispute_evidence_submit,
)

from .dispute_evidence import PACKET_FILE_FIELDS, evidence_packet, packet_files

FILE_HELP = "PDF, PNG or JPG, up to 5 MB; all files together up to 4.5 MB."


class DisputeEvidenceForm(forms.Form):
    """Stripe's evidence fields (text and files) and the packet files to attach. Validated
    against Stripe's limits with payments.dispute_evidence, the rules the service applies."""

    attach_receipt = forms.BooleanField(
        required=False,
        label="Attach our receipt PDF as the receipt",
        widget=UnfoldBooleanWidget,
    )
    attach_history = forms.BooleanField(
        required=False,
        label="Attach the account history PDF as other evidence (file)",
        widget=UnfoldBooleanWidget,
    )

    def __init__(self, *args, packet_files_for=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Set by the view before validation: builds the chosen packet files (may issue the
        # receipt), so they are checked with the rest before anything is sent.
        self.packet_files_for = packet_files_for
        self.evidence_files: list[EvidenceFile] = []
        for name in TEXT_FIELDS:
            long = name in LONG_TEXT_FIELDS
            self.fields[name] = forms.CharField(
                required=False,
                strip=True,
                label=FIELD_LABELS[name],
                widget=(
                    UnfoldAdminTextareaWidget(attrs={"rows": 4})
                    if long
                    else UnfoldAdminTextInputWidget()
                ),
                help_text=f"Up to {text_limit(name):,} characters.",
            )
        for name in FILE_FIELDS:
            self.fields[name] = forms.FileField(
                required=False,
                label=FIELD_LABELS[name],
                widget=UnfoldAdminFileFieldWidget,
                help_text=FILE_HELP,
            )

    def text_fields(self):
        return [self[name] for name in TEXT_FIELDS]

    def file_fields(self):
        return [self[name] for name in FILE_FIELDS]

    def clean(self):
        data = super().clean()
        text = {name: data.get(name) or "" for name in TEXT_FIELDS}
        files = []
        for name in FILE_FIELDS:
            upload = data.get(name)
            if not upload:
                continue
            if upload.size > FILE_MAX_BYTES:
                # Refused from its size alone: a huge upload is never read into memory.
                self.add_error(
                    name,
                    ERROR_FILE_TOO_LARGE.format(
                        label=FIELD_LABELS[name],
                        filename=upload.name,
                        size=format_size(upload.size),
                        limit=format_size(FILE_MAX_BYTES),
                    ),
                )
                continue
            files.append(EvidenceFile(field=name, filename=upload.name, content=upload.read()))
        chosen = {
            key
            for key, flag in (("receipt", "attach_receipt"), ("history", "attach_history"))
            if data.get(flag) and PACKET_FILE_FIELDS[key] not in {f.field for f in files}
        }
        if chosen and self.packet_files_for is not None:
            files += self.packet_files_for(chosen)
        for field, errors in evidence_errors({k: v for k, v in text.items() if v}, files).items():
            for error in errors:
                self.add_error(None if field == "__all__" else field, error)
        self.evidence_text = {k: v for k, v in text.items() if v}
        self.evidence_files = files
        return data


class DisputeRespondAdminMixin:
    """Mounts <pk>/evidence/, <pk>/submit/ and <pk>/accept/ on the dispute admin and shows the
    packet and the form under the dispute page."""

    change_form_outer_after_template = "reports/admin/dispute_respond.html"

    def has_respond_permission(self, request, obj=None):
        return request.user.has_perm(PERM_RESPOND)

    def get_urls(self):
        urls = [
            path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(require_POST(view)),
                name=f"payments_dispute_{name}",
            )
            for name, view in (
                ("evidence", self.evidence_view),
                ("submit", self.submit_view),
                ("accept", self.accept_view),
            )
        ]
        return [*urls, *super().get_urls()]

    # --- the dispute page ---------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), **self._respond_context(request, object_id)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _respond_context(self, request, object_id, *, form=None) -> dict:
        dispute = Dispute.objects.select_related("payment").filter(pk=object_id).first()
        if dispute is None:
            return {}
        packet = evidence_packet(dispute)
        can_respond = self.has_respond_permission(request, dispute)
        if form is None and can_respond:
            # Stripe's staged values win over the packet's suggestions.
            initial = {
                **packet.text,
                **{k: v for k, v in dispute.evidence.items() if k in TEXT_FIELDS},
            }
            form = DisputeEvidenceForm(initial=initial)
        return {
            "dispute": dispute,
            "packet": packet,
            "respond_form": form if can_respond else None,
            "can_respond": can_respond,
            "respondable": dispute.status in RESPONDABLE_STATUSES,
            "staged_fields": [f for f in EVIDENCE_FIELDS if dispute.evidence.get(f)],
        }

    # --- the POSTs -------------------------------------------------------------------------

    def _dispute_or_403(self, request, object_id) -> Dispute:
        if not self.has_respond_permission(request):
            raise PermissionDenied
        return get_object_or_404(Dispute.objects.select_related("payment"), pk=object_id)

    def _change_url(self, dispute: Dispute) -> str:
        return reverse("admin:payments_dispute_change", args=[dispute.pk])

    def _run(self, request, call, *, guarded=None, **kwargs) -> bool:
        try:
            result = call(
                acting_user=request.user, client=client_info_from_request(request), **kwargs
            )
        except DisputeResponseNotAllowed as exc:
            if guarded is not None:
                money_action_give_back(request.user, guarded)  # nothing moved
            self.message_user(request, exc.message, messages.ERROR)
            return False
        self.message_user(
            request, result.message, messages.SUCCESS if result.succeeded else messages.WARNING
        )
        return True

    def evidence_view(self, request, object_id):
        """Save evidence: the form, validated; invalid -> shown again with its errors."""
        dispute = self._dispute_or_403(request, object_id)
        packet = evidence_packet(dispute)
        form = DisputeEvidenceForm(
            request.POST,
            request.FILES,
            packet_files_for=lambda which: packet_files(
                packet, which=which, acting_user=request.user
            ),
        )
        if form.is_valid():
            self._run(
                request,
                dispute_evidence_save,
                dispute=dispute,
                text=form.evidence_text,
                files=form.evidence_files,
            )
            return HttpResponseRedirect(self._change_url(dispute))
        context = {
            **self.admin_site.each_context(request),
            **self._respond_context(request, object_id, form=form),
            "title": f"Evidence for dispute {dispute}",
            "opts": self.model._meta,
            "original": dispute,
            "change_url": self._change_url(dispute),
            "amount": format_money(dispute.amount, dispute.currency),
        }
        return TemplateResponse(
            request, "reports/admin/dispute_evidence_form.html", context, status=400
        )

    def submit_view(self, request, object_id):
        return self._final_response(request, object_id, kind="submit")

    def accept_view(self, request, object_id):
        return self._final_response(request, object_id, kind="accept")

    def _final_response(self, request, object_id, *, kind: str):
        """Submit or accept: final at the bank, so the money-action guard first (a fresh
        code before the confirmation page, asked again on the confirming POST)."""
        dispute = self._dispute_or_403(request, object_id)
        back_url = self._change_url(dispute)
        if "confirm" not in request.POST:
            redirect = step_up_redirect(request, next_url=back_url)
            return redirect or self._confirm_page(request, dispute, kind=kind)
        submit = kind == "submit"
        guarded = guard_money_action(
            request,
            action=AUDIT_ACTIONS["submit" if submit else "accept"],
            # Submitting pays nothing out; accepting gives the disputed amount up for good.
            amounts=[] if submit else [(dispute.amount, dispute.currency)],
            target=dispute,
            back_url=back_url,
        )
        if not guarded.allowed:
            return guard_admin_response(request, guarded, back_url=back_url)
        call = dispute_evidence_submit if submit else dispute_accept
        self._run(request, call, guarded=guarded, dispute=dispute)
        return HttpResponseRedirect(back_url)

    def _confirm_page(self, request, dispute: Dispute, *, kind: str):
        countdown = deadline_countdown(due=dispute.evidence_due_by, status=dispute.status)
        staged = [
            (FIELD_LABELS[f], dispute.evidence[f], f in FILE_FIELDS)
            for f in EVIDENCE_FIELDS
            if dispute.evidence.get(f)
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": (
                f"Submit evidence for dispute {dispute}"
                if kind == "submit"
                else f"Accept dispute {dispute}"
            ),
            "opts": self.model._meta,
            "original": dispute,
            "dispute": dispute,
            "kind": kind,
            "reason": reason_label(dispute.reason),
            "amount": format_money(dispute.amount, dispute.currency),
            "countdown": countdown[1] if countdown else "",
            "staged": staged,
            "respondable": dispute.status in RESPONDABLE_STATUSES,
            "post_url": reverse(f"admin:payments_dispute_{kind}", args=[dispute.pk]),
            "change_url": self._change_url(dispute),
        }
        return TemplateResponse(request, "reports/admin/dispute_confirm.html", context)
