"""The refund queue in the admin: POST-only decisions with server-side permission checks,
bulk actions through an intermediate form, the payment's refund page, filters, query counts."""

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.models import AdminAction
from payments.money import ERR_TOO_MANY_DECIMALS
from refunds import rules, services
from refunds.admin.badges import pending_refund_requests_badge
from refunds.models import RefundRequest
from tests.factories import PaymentFactory, RefundRequestFactory

pytestmark = pytest.mark.django_db

QUEUE = reverse("admin:refunds_refundrequest_changelist")


def approve_url(pk):
    return reverse("admin:refunds_refundrequest_approve", args=[pk])


def reject_url(pk):
    return reverse("admin:refunds_refundrequest_reject", args=[pk])


def confirm_url(pk, decision="approve"):
    return reverse(f"admin:refunds_refundrequest_{decision}_confirm", args=[pk])


def payment_refund_url(pk):
    return reverse("admin:refunds_payment_refund", args=[pk])


def _messages(response):
    return [str(m) for m in response.wsgi_request._messages]


# --- methods and permissions -------------------------------------------------------------------


@pytest.mark.parametrize("url", [approve_url, reject_url])
def test_decision_endpoints_refuse_get(client, approver, url):
    row = RefundRequestFactory()
    client.force_login(approver)
    assert client.get(url(row.pk)).status_code == 405
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PENDING


@pytest.mark.parametrize(
    ("url", "data"), [(approve_url, {"note": "ok"}), (reject_url, {"reason": "no"})]
)
def test_staff_without_the_permission_get_403(client, viewer, url, data):
    row = RefundRequestFactory()
    client.force_login(viewer)
    assert client.post(url(row.pk), data).status_code == 403
    assert client.get(confirm_url(row.pk)).status_code == 403
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PENDING
    assert not AdminAction.objects.exists()


def test_anonymous_users_are_sent_to_login(client):
    row = RefundRequestFactory()
    response = client.post(approve_url(row.pk), {"note": "x"})
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_confirmation_page_then_post_approves_and_refunds(
    client, approver, fake_stripe, django_capture_on_commit_callbacks
):
    row = RefundRequestFactory(amount=1234)
    client.force_login(approver)
    page = client.get(confirm_url(row.pk))
    assert page.status_code == 200
    assert "$12.34" in page.content.decode()
    assert f'action="{approve_url(row.pk)}"' in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(approve_url(row.pk), {"note": "Course canceled"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PROCESSED
    assert row.approved_by == approver
    assert fake_stripe.create_calls == 1
    audit = AdminAction.objects.get(action=services.AUDIT_APPROVE)
    assert audit.ip_address == "127.0.0.1"


def test_approving_your_own_request_shows_the_rule_and_changes_nothing(client, approver):
    row = RefundRequestFactory(requested_by=approver)
    client.force_login(approver)
    response = client.post(approve_url(row.pk), {"note": ""}, follow=True)
    assert services.ERR_OWN_REQUEST in _messages(response)
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PENDING


def test_rejecting_without_a_reason_shows_the_message(client, approver):
    row = RefundRequestFactory()
    client.force_login(approver)
    response = client.post(reject_url(row.pk), {"reason": "  "})
    assert response.status_code == 400
    assert services.ERR_REJECTION_REASON_REQUIRED in response.content.decode()
    row.refresh_from_db()
    assert row.status == RefundRequest.Status.PENDING


def test_deciding_twice_shows_not_pending(client, approver):
    row = RefundRequestFactory(status=RefundRequest.Status.REJECTED)
    client.force_login(approver)
    response = client.post(reject_url(row.pk), {"reason": "again"}, follow=True)
    assert services.ERR_NOT_PENDING.format(status="rejected") in _messages(response)


# --- bulk actions ------------------------------------------------------------------------------


def _bulk(client, action, rows, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(r.pk) for r in rows], **extra}
    return client.post(QUEUE, data)


def test_bulk_approve_asks_for_a_note_first(client, approver, fake_stripe):
    rows = [RefundRequestFactory() for _ in range(3)]
    client.force_login(approver)
    response = _bulk(client, "bulk_approve", rows)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="apply"' in body and 'name="note"' in body
    response = _bulk(client, "bulk_approve", rows, apply="1", note="")
    assert response.status_code == 200  # the form again, with its error
    assert all(r.status == RefundRequest.Status.PENDING for r in RefundRequest.objects.all())
    assert fake_stripe.create_calls == 0


def test_bulk_approve_with_a_note(
    client, approver, fake_stripe, django_capture_on_commit_callbacks
):
    rows = [RefundRequestFactory() for _ in range(3)]
    own = RefundRequestFactory(requested_by=approver)
    client.force_login(approver)
    with django_capture_on_commit_callbacks(execute=True):
        response = _bulk(client, "bulk_approve", [*rows, own], apply="1", note="Batch ok")
    assert response.status_code == 302
    statuses = dict(RefundRequest.objects.values_list("pk", "status"))
    assert [statuses[r.pk] for r in rows] == [RefundRequest.Status.PROCESSED] * 3
    assert statuses[own.pk] == RefundRequest.Status.PENDING  # four-eyes, even in bulk
    assert fake_stripe.create_calls == 3
    assert AdminAction.objects.filter(action=services.AUDIT_APPROVE).count() == 3


def test_bulk_reject_needs_a_reason(client, approver):
    rows = [RefundRequestFactory() for _ in range(2)]
    client.force_login(approver)
    response = _bulk(client, "bulk_reject", rows, apply="1", reason="")
    assert response.status_code == 200
    assert services.ERR_REJECTION_REASON_REQUIRED in response.content.decode()
    response = _bulk(client, "bulk_reject", rows, apply="1", reason="Duplicate requests")
    assert response.status_code == 302
    assert set(RefundRequest.objects.values_list("status", "rejection_reason")) == {
        (RefundRequest.Status.REJECTED, "Duplicate requests")
    }


def test_bulk_actions_need_the_permission(client, viewer):
    rows = [RefundRequestFactory()]
    client.force_login(viewer)
    _bulk(client, "bulk_approve", rows, apply="1", note="x")
    assert RefundRequest.objects.get().status == RefundRequest.Status.PENDING


# --- the payment's refund page ---------------------------------------------------------------


def test_payment_actions_lead_to_the_refund_page(client, requester):
    payment = PaymentFactory()
    client.force_login(requester)
    response = client.get(f"/admin/payments/payment/{payment.pk}/refund-eligibility/")
    assert response.status_code == 302
    assert response["Location"] == payment_refund_url(payment.pk) + "?check=1"
    response = client.get(f"/admin/payments/payment/{payment.pk}/request-refund/")
    assert response["Location"] == payment_refund_url(payment.pk)


def test_eligibility_shows_the_refundable_amount(client, requester):
    payment = PaymentFactory(amount=5000, amount_refunded=1000, status="partially_refunded")
    RefundRequestFactory(payment=payment, amount=500, status=RefundRequest.Status.APPROVED)
    client.force_login(requester)
    response = client.get(payment_refund_url(payment.pk) + "?check=1")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="refundable">$35.00<' in body
    assert 'name="amount"' not in body  # check only: no form


def test_eligibility_of_a_failed_payment_says_why(client, requester):
    payment = PaymentFactory(failed=True)
    client.force_login(requester)
    body = client.get(payment_refund_url(payment.pk)).content.decode()
    assert rules.ERR_PAYMENT_FAILED in body
    assert 'name="amount"' not in body


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("12.345", "", ERR_TOO_MANY_DECIMALS.format(currency="USD", places=2)),
        ("0", "", rules.ERR_AMOUNT_NOT_POSITIVE),
        (
            "50.01",
            "",
            rules.ERR_AMOUNT_ABOVE_REFUNDABLE.format(amount="$50.01", refundable="$50.00"),
        ),
        (
            "10",
            "EUR",
            rules.ERR_CURRENCY_MISMATCH.format(payment_currency="USD", currency="EUR"),
        ),
        ("-5", "", "The amount cannot be negative."),
    ],
)
def test_request_form_bad_input(client, requester, amount, currency, message):
    payment = PaymentFactory(amount=5000)
    client.force_login(requester)
    response = client.post(
        payment_refund_url(payment.pk),
        {"amount": amount, "currency": currency, "reason": "requested_by_customer"},
    )
    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not RefundRequest.objects.exists()


def test_request_form_creates_a_partial_request(client, requester):
    payment = PaymentFactory(amount=5000)
    client.force_login(requester)
    response = client.post(
        payment_refund_url(payment.pk),
        {
            "amount": "12.50",
            "currency": "usd",
            "reason": "requested_by_customer",
            "internal_reason": "quality",
            "notify_customer": "on",
        },
    )
    assert response.status_code == 302
    row = RefundRequest.objects.get()
    assert (row.amount, row.currency, row.requested_by, row.internal_reason) == (
        1250,
        "usd",
        requester,
        "quality",
    )
    assert row.notify_customer is True


def test_request_form_needs_the_permission(client, viewer):
    payment = PaymentFactory()
    client.force_login(viewer)
    response = client.post(payment_refund_url(payment.pk), {"amount": "1", "reason": "duplicate"})
    assert response.status_code == 403
    assert not RefundRequest.objects.exists()


# --- the changelist ------------------------------------------------------------------------------


def _make_rows(n):
    payment = PaymentFactory(amount=10**9)
    now = timezone.now()
    for i in range(n):
        row = RefundRequestFactory(payment=payment, amount=100 + i, requested_by=None)
        RefundRequest.objects.filter(pk=row.pk).update(created_at=now - timedelta(hours=i))


def _count_queries(client, n):
    RefundRequest.objects.all().delete()
    _make_rows(n)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(QUEUE, {"status__exact": "pending"})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == min(n, 50)
    return len(ctx.captured_queries)


def test_queue_query_count_does_not_grow_with_rows(admin_client):
    small = _count_queries(admin_client, 10)
    large = _count_queries(admin_client, 100)
    assert small == large


def test_queue_default_order_is_priority_then_age(admin_client):
    now = timezone.now()
    normal = RefundRequestFactory(amount=100)
    large = RefundRequestFactory(amount=9000, payment=PaymentFactory(amount=10000))
    urgent = RefundRequestFactory(amount=100)
    high = RefundRequestFactory(amount=100)
    done = RefundRequestFactory(status=RefundRequest.Status.PROCESSED)
    for row, age in [
        (urgent, timedelta(days=4)),
        (high, timedelta(days=2)),
        (done, timedelta(days=9)),
    ]:
        RefundRequest.objects.filter(pk=row.pk).update(created_at=now - age)
    response = admin_client.get(QUEUE)
    order = [row.pk for row in response.context["cl"].result_list]
    assert order == [urgent.pk, high.pk, large.pk, normal.pk, done.pk]


def test_presets_filter_the_queue(admin_client):
    urgent = RefundRequestFactory()
    RefundRequest.objects.filter(pk=urgent.pk).update(created_at=timezone.now() - timedelta(days=5))
    RefundRequestFactory()
    large = RefundRequestFactory(amount=6000, payment=PaymentFactory(amount=10000))
    response = admin_client.get(QUEUE + "?status__exact=pending&priority=urgent")
    assert [r.pk for r in response.context["cl"].result_list] == [urgent.pk]
    response = admin_client.get(QUEUE + "?status__exact=pending&priority=large")
    assert [r.pk for r in response.context["cl"].result_list] == [large.pk]
    assert "Urgent pending" in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "priority=bogus",
        "amount_from=abc&amount_to=1e999",
        "requested_by__id__exact=abc",
        "status__exact=nope",
        "currency=xxx",
        "q=" + "x" * 1000,
        "q=pi_nothing",
        "q=%23123",
        "q=someone@example.com",
        "o=99",
    ],
)
def test_bad_filters_and_searches_never_500(admin_client, query):
    RefundRequestFactory()
    response = admin_client.get(QUEUE + "?" + query)
    assert response.status_code in (200, 302)


def test_sidebar_badge_counts_pending(rf, approver):
    RefundRequestFactory()
    RefundRequestFactory()
    RefundRequestFactory(status=RefundRequest.Status.REJECTED)
    request = rf.get("/")
    request.user = approver
    assert pending_refund_requests_badge(request) == "2"
    RefundRequest.objects.update(status=RefundRequest.Status.REJECTED)
    assert pending_refund_requests_badge(request) == ""


def test_detail_page_shows_approve_and_reject(admin_client):
    row = RefundRequestFactory()
    body = admin_client.get(
        reverse("admin:refunds_refundrequest_change", args=[row.pk])
    ).content.decode()
    assert confirm_url(row.pk, "approve") in body
    assert confirm_url(row.pk, "reject") in body


def test_sidebar_badge_stops_counting_at_its_cap(rf, approver, monkeypatch):
    """Above BADGE_MAX the badge says so instead of counting the whole queue on every page."""
    from refunds.admin import badges

    monkeypatch.setattr(badges, "BADGE_MAX", 2)
    for _ in range(3):
        RefundRequestFactory()
    request = rf.get("/")
    request.user = approver
    with CaptureQueriesContext(connection) as ctx:
        assert pending_refund_requests_badge(request) == "2+"
    assert any("LIMIT 3" in q["sql"] for q in ctx.captured_queries)
    RefundRequest.objects.filter(pk=RefundRequest.objects.first().pk).delete()
    assert pending_refund_requests_badge(request) == "2"
