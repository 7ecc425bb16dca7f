"""Every sidebar link, for each demo role, in a real browser: no page shows an amount in raw
minor units or a bare currency code, and none is an error or Django's debug page. The first
row of every list is opened too. Screenshots: artifacts/crawl-audit-trail.png,
artifacts/crawl-outbox.png and
artifacts/crawl-payment-title.png.

The data is the demo's own generator (small) plus the rows it leaves to localstripe (open
disputes, refund requests in several states, a webhook event, a sync run), so each list has a
first row to open. The logins are the demo's (`demo_staff`, fixtures/groups.json)."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from backoffice.api.tokens import api_token_create
from management.demo_data import DemoGenerator, demo_size
from management.demo_fraud import seed_fraud_reviews
from management.management.commands.demo_staff import DEMO_USERS
from management.schedules import ensure_job_schedules
from payments import sync
from payments.gateway import StripeSubscription, StripeTransfer, StripeTransferReversal
from payments.models import (
    Customer,
    CustomerAdjustment,
    EarningAdjustment,
    Instructor,
    Payment,
    Payout,
    PayoutRun,
    SyncRun,
    WebhookEvent,
)
from refunds.models import RefundRequest
from reports.demo import seed_reports
from reports.receipts import receipt_issue
from tests.coupons.support import coupon_row, fixed_terms, percent_terms
from tests.factories import DisputeFactory, PaymentFactory, RefundRequestFactory
from tests.payments.payout_support import entry, payout

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The demo's currencies. Formatted money reads "$1,234.56", "€12.00", "¥1,500" or
# "1.234 KWD": never digits run straight into a currency code, never a lower-case code.
CODES = r"(?:usd|eur|gbp|jpy)"
UNFORMATTED = {
    # "22300 usd", "20300 USD": a bare integer (not the tail of "1,234.56 USD", not part of
    # an id or a date) next to a currency code.
    "minor units next to a currency": re.compile(
        rf"(?<![\w.,-])\d{{3,}}[ \t\n]*{CODES}\b", re.IGNORECASE
    ),
    # "Currency usd": Stripe's lower-case code shown as it is stored.
    "a raw currency code": re.compile(rf"(?<![\w/.-]){CODES}(?![\w/.-])"),
    # '"amount": 19900' in a JSON cell.
    "a JSON amount": re.compile(r"\b(?:amount|fee|net|gross)\w*\"?[ \t]*:[ \t]*-?\d{3,}", re.I),
    # "Amount\n3900": a money label over a bare integer (a read-only field of the page).
    "a bare integer under a money label": re.compile(
        r"(?im)^[^\n]*\b(?:amount|fees?|net|gross|refunded|total)\b[^\n]*\n[ \t]*-?\d{3,}[ \t]*$"
    ),
}
DEBUG_PAGE_MARKERS = ("DEBUG = True", "Traceback (most recent call last)", "Request Method:")
ROLES = [(username, password) for username, password, *_ in DEMO_USERS]
# The page's text as staff read it, minus what is machine-readable on purpose (a webhook's
# payload as Stripe signed it, marked data-machine-readable).
READABLE_TEXT_JS = """() => {
    const body = document.body.cloneNode(true);
    body.querySelectorAll('[data-machine-readable], script, style, template')
        .forEach((node) => node.remove());
    return body.innerText;
}"""
# A list, with or without a preset (the sidebar may open a list on a filter).
CHANGELIST_LINK = re.compile(r"^/admin/[a-z_]+/[a-z_]+/(\?.*)?$")


def unformatted(text: str) -> list[str]:
    """What on the page looks like an unformatted amount: '<rule>: <the text around it>'."""
    found = []
    for rule, pattern in UNFORMATTED.items():
        for match in pattern.finditer(text):
            around = " ".join(text[max(0, match.start() - 50) : match.end() + 20].split())
            found.append(f"{rule}: …{around}…")
    return found


def test_the_pattern_catches_raw_amounts_and_lets_formatted_ones_pass():
    raw = [
        "Amount 20300 / Currency usd",
        "credit_note_issue\tCN-2026-000027\t22300 usd\tSuccess",
        '{"amount": 19900, "currency": "eur"}',
        "Gross amount\n235798\nSum of captured amounts",
        "Total 12000 JPY",
    ]
    formatted = [
        "Amount $203.00",
        "-$39.00 ¥1,500 €12.00 £7.99 1.234 KWD 12,345.67 USD 1,500 JPY",
        "2026-12-01 13:47 UTC pi_3PdisputedE2E cus_test000123 re_usd123 REC-2026-000123",
        "Attempted\n32\nSucceeded\n27",
        "Currency USD",
    ]
    assert all(unformatted(text) for text in raw), [t for t in raw if not unformatted(t)]
    assert not any(unformatted(text) for text in formatted), [unformatted(t) for t in formatted]


@pytest.fixture
def demo_like_data():
    call_command("demo_staff", stdout=io.StringIO())
    # The generator's codes as coupons (before its payments, which redeem them), so the
    # Coupons list has rows and a coupon's page shows usage.
    coupon_row("WELCOME10", percent_terms(1000, caps={"usd": 2000, "jpy": 3000}))
    coupon_row("FRIENDS15", fixed_terms({"usd": 1500, "eur": 1400, "gbp": 1200, "jpy": 2000}))
    # 200: the generator's fraud patterns start there, so the fraud list has rows.
    DemoGenerator(seed=7).run(demo_size(200))
    seed_fraud_reviews()
    seed_reports(days=3)
    ensure_job_schedules()
    # What the demo keeps in localstripe: open disputes, refund requests in several states.
    DisputeFactory(amount=20300, evidence_due_by=timezone.now() + timedelta(days=2))
    yen = PaymentFactory(currency="jpy", amount=15000, stripe_fee=0, platform_fee=0, net=15000)
    RefundRequestFactory(payment=yen, amount=5000, currency="jpy")
    RefundRequestFactory(amount=2230, status=RefundRequest.Status.REJECTED)
    payment = Payment.objects.filter(currency="eur").first()
    WebhookEvent.objects.create(
        stripe_id="evt_crawl0001",
        type="payment_intent.succeeded",
        object_id=payment.stripe_payment_intent_id,
        created=timezone.now(),
        payload={
            "id": "evt_crawl0001",
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": payment.stripe_payment_intent_id,
                    "amount": 19900,
                    "currency": "eur",
                }
            },
        },
        status=WebhookEvent.Status.PROCESSED,
    )
    # A Connect transfer to one of the instructors, partly reversed, as the mirror lands it.
    now = timezone.now()
    sync.upsert_transfers(
        [
            StripeTransfer(
                id="tr_crawl0001",
                amount=4000,
                currency="eur",
                destination=Instructor.objects.order_by("pk").first().stripe_account_id,
                created=now,
                amount_reversed=1500,
                reversals=[
                    StripeTransferReversal(
                        id="trr_crawl0001",
                        transfer_id="tr_crawl0001",
                        amount=1500,
                        currency="eur",
                        created=now,
                    )
                ],
            )
        ]
    )
    # A subscription of one of the generated customers, as the mirror lands it (past due, so
    # the dashboard's card shows it).
    subscriber = Payment.objects.filter(currency="usd").first().customer
    sync.upsert_subscriptions(
        [
            StripeSubscription(
                id="sub_crawl0001",
                customer_id=subscriber.stripe_id,
                status="past_due",
                created=now,
                currency="usd",
                amount=4900,
                interval="month",
                items_count=1,
                plan_name="Monthly tutoring",
                current_period_start=now,
                current_period_end=now + timedelta(days=30),
                latest_invoice_id="in_crawl0001",
                latest_invoice_status="open",
                latest_invoice_amount_due=4900,
                latest_invoice_amount_paid=0,
            )
        ]
    )
    SyncRun.objects.create(
        status=SyncRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        counts={"payment_intent": {"created": 3, "updated": 1, "unchanged": 96, "skipped": 0}},
        outcomes={"payment_intent": {"status": "succeeded", "error": ""}},
    )
    # Payouts: a run's payout paid by Connect and a yen bank transfer waiting for approval.
    instructor = Instructor.objects.exclude(stripe_account_id="").first()
    entry(instructor, 90000)
    entry(instructor, 150000, "jpy")
    run = PayoutRun.objects.create(totals={"usd": {"count": 1, "amount": 45000}})
    payout(instructor, 45000, run=run, status=Payout.Status.PAID, stripe_transfer_id="tr_crawl0002")
    payout(instructor, 120000, "jpy", method=Payout.Method.BANK)
    EarningAdjustment.objects.create(
        instructor=instructor, amount=-2500, currency="usd", reason="Session not held"
    )
    # A locked-out sign-in, so the Sign-in lockouts list has a row to open.
    AccessAttempt.objects.create(
        username="guesser",
        ip_address="203.0.113.9",
        user_agent="curl/8",
        http_accept="*/*",
        path_info="/admin/login/",
        get_data="",
        post_data="username=guesser",
        failures_since_start=settings.AXES_FAILURE_LIMIT,
    )
    # Customer adjustments: a pending yen credit and hours applied (the queue and a page).
    customer = Customer.objects.order_by("pk").first()
    CustomerAdjustment.objects.create(
        customer=customer,
        unit="money",
        direction="credit",
        amount=3000,
        currency="jpy",
        reason="Lesson cancelled by the tutor",
    )
    CustomerAdjustment.objects.create(
        customer=customer,
        unit="hours",
        direction="debit",
        minutes=90,
        reason="Lesson not deducted",
        status=CustomerAdjustment.Status.REJECTED,
        decision_note="Already deducted",
    )
    # An API token of the superuser's, so the API tokens list has a row to open.
    demo = get_user_model().objects.get(username="demo")
    api_token_create(
        user=demo, name="crawl", expires_at=timezone.now() + timedelta(days=1), acting_user=demo
    )
    # A receipt, so the Outbox lists its queued e-mail (with the PDF) to open.
    receipt_issue(payment=PaymentFactory())


def log_in(page, base_url, username, password):
    page.context.clear_cookies()
    page.goto(f"{base_url}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


def check_page(page, url, problems):
    response = page.goto(url)
    text = page.evaluate(READABLE_TEXT_JS)
    if response is None or response.status >= 400:
        problems.append(f"{url}: HTTP {response.status if response else '?'}")
    problems += [f"{url}: the debug page" for m in DEBUG_PAGE_MARKERS if m in text][:1]
    problems += [f"{url}: {found}" for found in unformatted(text)]


def test_every_sidebar_page_for_every_role_shows_money_formatted(
    live_server, page, screenshot_dir, demo_like_data
):
    base = live_server.url
    visited = {}
    for username, password in ROLES:
        log_in(page, base, username, password)
        links = page.eval_on_selector_all(
            "a[href^='/admin/']", "(links) => links.map((a) => a.getAttribute('href'))"
        )
        changelists = sorted({link for link in links if CHANGELIST_LINK.match(link)})
        assert changelists, f"{username} sees no list in the sidebar"
        problems: list[str] = []
        with_a_row = set()
        check_page(page, f"{base}/admin/", problems)
        for changelist in changelists:
            check_page(page, base + changelist, problems)
            first_row = page.locator("#result_list tbody tr a[href*='/change/']").first
            if first_row.count():
                with_a_row.add(changelist.split("?")[0])
                check_page(page, base + first_row.get_attribute("href"), problems)
        visited[username] = with_a_row
        assert not problems, f"{username}:\n" + "\n".join(problems)
    # The superuser opened a row of every list in the sidebar (the data has one each), and
    # each role saw only its own lists.
    sidebar = {
        reverse(f"admin:{model.replace('.', '_')}_changelist")
        for _, items in settings.SIDEBAR_SECTIONS
        for _, _, model, *_ in items
    }
    assert sidebar <= visited["demo"], sidebar - visited["demo"]
    assert visited["auditor"] < visited["demo"]

    # The audit trail, with amounts, and a payment titled by its Stripe id as it is.
    log_in(page, base, *ROLES[0])
    page.goto(f"{base}/admin/backoffice/adminaction/")
    page.screenshot(path=str(screenshot_dir / "crawl-audit-trail.png"))
    page.goto(f"{base}/admin/post_office/email/")
    page.screenshot(path=str(screenshot_dir / "crawl-outbox.png"))
    payment = Payment.objects.order_by("-created").first()
    page.goto(f"{base}/admin/payments/payment/{payment.pk}/change/")
    title = page.locator("h1").first.inner_text()
    assert payment.stripe_payment_intent_id in title
    assert payment.stripe_payment_intent_id.capitalize() not in title
    page.screenshot(path=str(screenshot_dir / "crawl-payment-title.png"))
