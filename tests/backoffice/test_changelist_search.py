"""Every list with a search box: substring and any-case search on names and e-mails, whole
Stripe ids in any case, a line under the box saying what it searches; bad filter values are
dropped with a message, never a silent empty list, a 400 or a 500."""

import html

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.changelist import (
    ERR_BAD_VALUE,
    ERR_UNKNOWN_FILTER,
    ERR_UNKNOWN_VALUE,
    ChangelistMixin,
)
from backoffice.models import AdminAction
from payments import hours
from payments.admin.filters import WARN_UNKNOWN_CURRENCY_FILTER
from payments.models import (
    BalanceEntry,
    Coupon,
    Customer,
    CustomerAdjustment,
    Dispute,
    EarningAdjustment,
    EarningEntry,
    FraudAlert,
    Instructor,
    Lesson,
    Payment,
    PaymentMethod,
    PaymentRetry,
    Payout,
    StudentBalance,
    Subscription,
    Transfer,
    WebhookEvent,
)
from refunds.models import RefundRequest
from tests.factories import (
    CustomerFactory,
    DisputeFactory,
    InstructorFactory,
    PaymentFactory,
    PaymentMethodFactory,
    RefundFactory,
    RefundRequestFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# The target's Stripe ids are mixed case, as Stripe's are; searches below change the case.
PI = "pi_3MtwBwLkdIwHu7ix28a3tqPa"
CH = "ch_3MtwBwLkdIwHu7ix28Zc9xQe"
CUS = "cus_NffrFeUfNV2Hib"
PM = "pm_1MqLiJLkdIwHu7ixUEgbFdYF"
RE = "re_3MtwBwLkdIwHu7ix0W5rCu2x"
DP = "dp_1MtJUT2eZvKYlo2CkDfR8Tz9"
EVT = "evt_1NG8Du2eZvKYlo2CUI79vXWy"
ISSFR = "issfr_1NnrwHBw2dPENLoi9lnhV3RQ"
ACCT = "acct_1Nv0FGQ9RKHgCVdK"
CBTXN = "cbtxn_1MrU9k2eZvKYlo2CZF8ghLMS"
TR = "tr_1MiN3gLkdIwHu7ixNCZvFdgA"
PROMO = "promo_1PqrStUvWxYz0123"
SUB = "sub_1MowQVLkdIwHu7ixeRlqHVzs"
# The target customer: a name and an e-mail that share no word, so each is searched alone.
NAME = "Ada Quintero"
EMAIL = "maria.lopez@example.com"


def changelist(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.fixture
def world():
    """{model: (target row, other row)}: the target belongs to NAME / EMAIL and carries the
    ids above; the other row belongs to someone else."""
    target_customer = CustomerFactory(stripe_id=CUS, name=NAME, email=EMAIL)
    other_customer = CustomerFactory(
        stripe_id="cus_Other0000001", name="Grace Hopper", email="grace@example.org"
    )
    target_method = PaymentMethodFactory(stripe_id=PM, customer=target_customer)
    other_method = PaymentMethodFactory(stripe_id="pm_Other000001", customer=other_customer)
    target = PaymentFactory(
        stripe_payment_intent_id=PI,
        stripe_charge_id=CH,
        customer=target_customer,
        payment_method=target_method,
        instructor=InstructorFactory(
            name="Maria Lopez", email="maria.lopez@tutors.example", stripe_account_id=ACCT
        ),
    )
    other = PaymentFactory(
        stripe_payment_intent_id="pi_Other000000001",
        customer=other_customer,
        payment_method=other_method,
        instructor=InstructorFactory(name="Grace Hopper", email="grace@tutors.example"),
    )
    RefundFactory(stripe_id=RE, payment=target)
    target_dispute = DisputeFactory(stripe_id=DP, payment=target)
    other_dispute = DisputeFactory(stripe_id="dp_Other000001", payment=other)
    target_request = RefundRequestFactory(payment=target, stripe_refund_id=RE)
    other_request = RefundRequestFactory(payment=other)
    now = timezone.now()
    target_alert = FraudAlert.objects.create(
        payment=target, source=FraudAlert.Source.EARLY_FRAUD_WARNING, stripe_id=ISSFR, created=now
    )
    other_alert = FraudAlert.objects.create(
        payment=other, source=FraudAlert.Source.STAFF, created=now
    )
    events = [
        WebhookEvent.objects.create(
            stripe_id=stripe_id,
            type="payment_intent.succeeded",
            object_id=object_id,
            created=now,
            payload={},
            status=WebhookEvent.Status.PROCESSED,
        )
        for stripe_id, object_id in ((EVT, PI), ("evt_Other000001", "pi_Other000000001"))
    ]
    balances = [
        StudentBalance.objects.create(customer=customer, minutes=60)
        for customer in (target_customer, other_customer)
    ]
    ledger_entries = [
        hours.credit_minutes(
            customer_id=customer.pk, minutes=60, kind="adjustment", reference=f"world:{n}"
        )
        for n, customer in enumerate((target_customer, other_customer))
    ]
    lessons = [
        Lesson.objects.create(
            booking_id=booking,
            customer=customer,
            minutes=60,
            lesson_date=now.date(),
            status=Lesson.Status.CONSUMED,
        )
        for booking, customer in (("bk-Target-1", target_customer), ("bk-other-2", other_customer))
    ]
    retries = [
        PaymentRetry.objects.create(
            payment=payment,
            status=PaymentRetry.Status.FAILED,
            amount=payment.amount,
            currency=payment.currency,
            stripe_payment_intent_id=payment.stripe_payment_intent_id,
            stripe_payment_method_id=payment.payment_method.stripe_id,
            idempotency_key=f"payment_retry:{payment.pk}",
        )
        for payment in (target, other)
    ]
    actions = [
        AdminAction.objects.create(
            actor=UserFactory(username=username),
            action=action,
            target_type="payment",
            target_id=target_id,
            target_repr=target_repr,
        )
        for username, action, target_id, target_repr in (
            ("auditor_ada", "refund_request.approve", PI, f"Payment {PI}"),
            ("grace", "customer.block", "cus_Other0000001", "grace@example.org"),
        )
    ]
    payouts = [
        Payout.objects.create(
            instructor=payment.instructor,
            amount=4000,
            currency="usd",
            status=Payout.Status.PAID,
            stripe_transfer_id=transfer_id,
        )
        for payment, transfer_id in ((target, TR), (other, "tr_Other000001"))
    ]
    transfers = [
        Transfer.objects.create(
            stripe_id=payout.stripe_transfer_id,
            payout=payout,
            instructor=payout.instructor,
            destination=payout.instructor.stripe_account_id or "acct_Other000001",
            amount=payout.amount,
            currency=payout.currency,
            created=now,
        )
        for payout in payouts
    ]
    entries = [
        EarningEntry.objects.create(
            instructor=payment.instructor,
            currency="usd",
            amount=payment.net,
            kind=EarningEntry.Kind.EARNING,
            reference=f"payment:{payment.stripe_payment_intent_id}:earning",
            payment=payment,
            occurred_at=now,
            available_at=now,
        )
        for payment in (target, other)
    ]
    adjustments = [
        EarningAdjustment.objects.create(
            instructor=payment.instructor, amount=500, currency="usd", reason=reason
        )
        for payment, reason in ((target, "Bonus"), (other, "Missed session"))
    ]
    coupons = (
        Coupon.objects.create(
            code="SPRING25",
            name="Spring sale",
            kind="percentage",
            percent_off_bps=2500,
            stripe_promotion_code_id=PROMO,
        ),
        Coupon.objects.create(
            code="WELCOME10", name="Welcome", kind="percentage", percent_off_bps=1000
        ),
    )
    subscriptions = [
        Subscription.objects.create(
            stripe_id=stripe_id, customer=customer, status="active", created=now
        )
        for stripe_id, customer in ((SUB, target_customer), ("sub_Other000001", other_customer))
    ]
    customer_adjustments = [
        CustomerAdjustment.objects.create(
            customer=customer,
            unit="money",
            direction="credit",
            amount=500,
            currency="usd",
            reason="Goodwill",
            status="applied",
            stripe_balance_transaction_id=txn_id,
        )
        for customer, txn_id in ((target_customer, CBTXN), (other_customer, "cbtxn_Other0001"))
    ]
    return {
        Coupon: coupons,
        Subscription: tuple(subscriptions),
        CustomerAdjustment: tuple(customer_adjustments),
        Payout: tuple(payouts),
        Transfer: tuple(transfers),
        EarningEntry: tuple(entries),
        EarningAdjustment: tuple(adjustments),
        Payment: (target, other),
        Customer: (target_customer, other_customer),
        PaymentMethod: (target_method, other_method),
        Dispute: (target_dispute, other_dispute),
        RefundRequest: (target_request, other_request),
        FraudAlert: (target_alert, other_alert),
        WebhookEvent: tuple(events),
        StudentBalance: tuple(balances),
        BalanceEntry: tuple(ledger_entries),
        Lesson: tuple(lessons),
        PaymentRetry: tuple(retries),
        Instructor: (target.instructor, other.instructor),
        AdminAction: tuple(actions),
    }


def any_case(term):
    """The term as typed in three ways: lower, upper, and case swapped."""
    return [term.lower(), term.upper(), term.swapcase()]


CUSTOMER_TEXT = ["quinter", "ADA QUINTERO", "uinTer", "lopez", "LOPEZ@EXAMPLE", "ia.Lop"]
SEARCHES = {
    Payment: [*CUSTOMER_TEXT, PI, CH, CUS, PM, RE, DP],
    Customer: [*CUSTOMER_TEXT, CUS],
    PaymentMethod: [*CUSTOMER_TEXT, PM, CUS],
    Dispute: [*CUSTOMER_TEXT, DP, PI, CH],
    RefundRequest: [*CUSTOMER_TEXT, PI, RE],
    FraudAlert: [*CUSTOMER_TEXT, ISSFR, PI, CH],
    WebhookEvent: [EVT, PI],
    StudentBalance: [*CUSTOMER_TEXT, CUS],
    BalanceEntry: [*CUSTOMER_TEXT, CUS, "world:0"],
    Lesson: [*CUSTOMER_TEXT, CUS, "bk-target"],
    PaymentRetry: [*CUSTOMER_TEXT, PI],
    Instructor: ["maria lop", "LOPEZ", "lopez@tutors", ACCT],
    Payout: ["maria lop", "LOPEZ@TUTORS", TR, ACCT],
    Transfer: ["maria lop", "LOPEZ@TUTORS", TR, ACCT],
    AdminAction: [PI, "approve", "Auditor_Ada"],
    EarningEntry: ["maria lop", "LOPEZ", "lopez@tutors", PI, ACCT],
    EarningAdjustment: ["maria lop", "LOPEZ", "lopez@tutors", "bonus"],
    Coupon: ["spring", "g25", "Sale", PROMO],
    Subscription: [*CUSTOMER_TEXT, SUB, CUS],
    CustomerAdjustment: [*CUSTOMER_TEXT, CUS, CBTXN],
}
CASES = [
    (model, typed)
    for model, terms in SEARCHES.items()
    for term in terms
    for typed in ([term] if term in CUSTOMER_TEXT else any_case(term))
]


@pytest.mark.parametrize(("model", "term"), CASES, ids=lambda v: getattr(v, "__name__", v))
def test_search_finds_the_target_only(admin_client, world, model, term):
    target, _other = world[model]
    response = admin_client.get(changelist(model), {"q": term})
    assert response.status_code == 200
    shown = {row.pk for row in response.context["cl"].result_list}
    assert shown == {target.pk}, (term, shown)


@pytest.mark.parametrize(
    ("model", "term"),
    [
        # An id is matched whole: a piece of one finds nothing (and is not a name).
        (Payment, PI[:-1]),
        (Customer, CUS + "x"),
        (WebhookEvent, EVT[:10]),
        # Accents are not folded: the name "Ada Quintero" has no "é".
        (Customer, "quintéro"),
        (Payment, "nobody@nowhere"),
    ],
)
def test_search_finds_nothing_for_a_piece_of_an_id_or_another_word(
    admin_client, world, model, term
):
    response = admin_client.get(changelist(model), {"q": term})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize("term", ["#{pk}", "{pk}"])
def test_refund_queue_finds_a_request_by_number(admin_client, world, term):
    target, _ = world[RefundRequest]
    response = admin_client.get(changelist(RefundRequest), {"q": term.format(pk=target.pk)})
    assert [row.pk for row in response.context["cl"].result_list] == [target.pk]


def searched_admins():
    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if isinstance(model_admin, ChangelistMixin) and model_admin.search_spec is not None
    ]


def test_every_list_in_the_search_table_has_a_search_spec():
    assert {model for model, _ in searched_admins()} == set(SEARCHES)


@pytest.mark.parametrize(
    ("model", "model_admin"), searched_admins(), ids=lambda v: getattr(v, "__name__", "")
)
def test_a_line_under_the_box_says_what_it_searches(admin_client, model, model_admin):
    response = admin_client.get(changelist(model))
    page = html.unescape(response.content.decode())
    help_text = model_admin.search_spec.help_text
    assert help_text.startswith("Searches: ")
    assert '<p id="searchbar-help"' in page
    assert help_text in page
    # Not only a placeholder, which disappears as soon as one types.
    assert f'placeholder="{help_text}"' not in page


def test_receipts_keep_their_own_search_and_say_what_it_searches(admin_client):
    page = html.unescape(admin_client.get(reverse("admin:reports_receipt_changelist")).text)
    assert "Searches: a receipt or credit note number" in page


@pytest.mark.parametrize("model", [Payment, Customer, RefundRequest])
def test_a_search_adds_no_query(admin_client, world, model):
    counts = []
    for params in ({}, {"q": "lopez"}, {"q": PI.upper()}):
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(changelist(model), params)
        assert response.status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1] == counts[2], counts


# --- filters ----------------------------------------------------------------------------------


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        (
            Payment,
            {"status__exact": "bogus"},
            ERR_UNKNOWN_VALUE.format(label="status", value="bogus", things="payments"),
        ),
        (
            Payment,
            {"currency": "xx"},
            ERR_UNKNOWN_VALUE.format(label="currency", value="xx", things="payments"),
        ),
        (
            Payment,
            {"nosuchfield": "1"},
            ERR_UNKNOWN_FILTER.format(name="nosuchfield", things="payments"),
        ),
        (
            Payment,
            {"id__in": "9999999999999999999999"},
            ERR_BAD_VALUE.format(label="ID", value="9999999999999999999999", things="payments"),
        ),
        (
            Payment,
            {"id__in": "1,abc"},
            ERR_BAD_VALUE.format(label="ID", value="abc", things="payments"),
        ),
        (
            Payment,
            {"livemode__exact": "maybe"},
            ERR_BAD_VALUE.format(label="livemode", value="maybe", things="payments"),
        ),
        (
            Payment,
            # A regular expression is refused whole: a bad one is a database error.
            {"description__regex": "("},
            ERR_UNKNOWN_FILTER.format(name="description__regex", things="payments"),
        ),
        (
            Payment,
            # Django refuses lookups across relations a list does not offer (a 400 before).
            {"customer__email__startswith": "a"},
            ERR_UNKNOWN_FILTER.format(name="customer__email__startswith", things="payments"),
        ),
        (
            RefundRequest,
            {"priority": "bogus"},
            ERR_UNKNOWN_VALUE.format(label="priority", value="bogus", things="refund requests"),
        ),
        (
            RefundRequest,
            {"status__exact": "bogus"},
            ERR_UNKNOWN_VALUE.format(label="status", value="bogus", things="refund requests"),
        ),
        (
            RefundRequest,
            {"requested_by__id__exact": "x"},
            ERR_BAD_VALUE.format(label="ID", value="x", things="refund requests"),
        ),
        (
            Dispute,
            {"status__exact": "lost_forever"},
            ERR_UNKNOWN_VALUE.format(label="status", value="lost_forever", things="disputes"),
        ),
        (
            WebhookEvent,
            {"type": "not an event"},
            ERR_UNKNOWN_VALUE.format(label="type", value="not an event", things="webhook events"),
        ),
        (
            AdminAction,
            {"result__exact": "maybe"},
            ERR_UNKNOWN_VALUE.format(label="result", value="maybe", things="admin actions"),
        ),
    ],
)
def test_a_bad_filter_is_dropped_with_a_message(admin_client, world, model, params, message):
    response = admin_client.get(changelist(model), params)
    assert response.status_code == 302
    response = admin_client.get(changelist(model), params, follow=True)
    assert response.status_code == 200
    assert message in messages_of(response)
    # The list is shown without that filter: every row, not an empty page.
    assert len(response.context["cl"].result_list) == len(world[model])
    for key in params:
        assert key not in response.request["QUERY_STRING"]


def test_a_bad_date_is_ignored_with_the_date_filters_own_message(admin_client, world):
    response = admin_client.get(changelist(Payment), {"created_from": "2026-13-45"})
    assert response.status_code == 200
    assert "Ignored the date '2026-13-45': use YYYY-MM-DD." in messages_of(response)
    assert len(response.context["cl"].result_list) == 2


def test_a_bad_date_in_a_range_filter_that_does_not_check_it_is_dropped(admin_client):
    # Sync runs use unfold's own date-time range filter.
    response = admin_client.get(
        reverse("admin:payments_syncrun_changelist"),
        {"started_at_from_0": "2026-13-45", "started_at_from_1": "10:00"},
    )
    assert response.status_code == 302
    response = admin_client.get(
        reverse("admin:payments_syncrun_changelist"),
        {"started_at_from_0": "2026-13-45", "started_at_from_1": "10:00"},
        follow=True,
    )
    assert any("2026-13-45" in message for message in messages_of(response))


def test_a_currency_we_do_not_know_shows_its_stored_rows_and_says_so(admin_client, world):
    PaymentFactory(stripe_payment_intent_id="pi_usx", currency="usx")
    response = admin_client.get(changelist(Payment), {"currency": "usx"})
    assert response.status_code == 200
    assert [p.stripe_payment_intent_id for p in response.context["cl"].result_list] == ["pi_usx"]
    assert WARN_UNKNOWN_CURRENCY_FILTER.format(currency="usx") in messages_of(response)


def test_only_the_bad_filter_is_dropped(admin_client, world):
    response = admin_client.get(
        changelist(Payment),
        {"status__exact": "bogus", "currency": "usd", "q": "lopez"},
        follow=True,
    )
    query = response.request["QUERY_STRING"]
    assert "currency=usd" in query and "q=lopez" in query and "status" not in query
    assert [row.pk for row in response.context["cl"].result_list] == [world[Payment][0].pk]


@pytest.mark.parametrize(
    ("model", "params"),
    [
        (Payment, {"status__exact": "failed"}),
        (Payment, {"currency": "JPY"}),
        (Payment, {"currency": "chf"}),
        (Payment, {"currency": "Usd"}),
        (Payment, {"created_from": "2026-01-01", "created_to": ""}),
        (Payment, {"livemode__exact": "1"}),
        (Payment, {"id__in": "1,2"}),
        (Payment, {"amount_from": "10"}),
        (RefundRequest, {"status__exact": "pending", "priority": "urgent"}),
        (RefundRequest, {"requested_by__id__exact": "1"}),
        (RefundRequest, {"requested_by__isnull": "True"}),
        (WebhookEvent, {"type": "charge.dispute.created", "attention": "failed"}),
        (PaymentMethod, {"type__exact": "card", "is_default__exact": "0"}),
        (AdminAction, {"result__exact": "success"}),
    ],
)
def test_good_filters_are_applied_without_a_detour(admin_client, world, model, params):
    response = admin_client.get(changelist(model), params)
    assert response.status_code == 200
    assert messages_of(response) == []


CHECKED_ADMINS = [
    (model, model_admin)
    for model, model_admin in admin.site._registry.items()
    if isinstance(model_admin, ChangelistMixin)
]


@pytest.mark.parametrize(
    ("model", "model_admin"), CHECKED_ADMINS, ids=lambda v: getattr(v, "__name__", "")
)
def test_no_list_answers_a_hand_edited_url_with_an_error(admin_client, model, model_admin):
    params = {
        "status__exact": "bogus",
        "id__in": "9999999999999999999999",
        "id__gt": "-99999999999999999999999",
        "zzz": "1",
        "created_from": "yesterday",
        "currency": "xx",
    }
    response = admin_client.get(changelist(model), params, follow=True)
    assert response.status_code == 200
    assert messages_of(response), "every dropped filter is reported"


def test_a_parameter_the_list_reads_itself_is_not_a_filter(rf, admin_user, monkeypatch):
    model_admin = admin.site._registry[Payment]
    request = rf.get(changelist(Payment), {"view": "anything", "zzz": "1", "cursor": "c"})
    request.user = admin_user
    # The keyset pager's cursor is the payments list's own parameter.
    assert set(model_admin.changelist_filter_problems(request)) == {"view", "zzz"}
    monkeypatch.setattr(model_admin, "extra_query_params", frozenset({"cursor", "view"}))
    assert set(model_admin.changelist_filter_problems(request)) == {"zzz"}
