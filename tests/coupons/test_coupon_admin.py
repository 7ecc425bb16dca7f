"""The coupon screens: the list's badges and usage, the form (per-currency fields validated,
the immutability note), deactivate as an audited POST, the coupon page's statistics, the CSV
export, and who may do what."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from backoffice.models import AdminAction
from payments.admin.coupon_forms import IMMUTABLE_NOTE
from payments.coupon_stats import coupon_statistics
from payments.models import Coupon, CouponRedemption, Payment
from payments.services import coupons as services
from payments.sync import upsert_payment_intents
from tests.coupons.support import coupon_manager, coupon_row, fixed_terms, intent, percent_terms
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_stripe(monkeypatch):
    """Pushes recorded instead of sent (the localstripe tests send them)."""
    pushed = []

    def push(*, coupon):
        pushed.append(coupon.pk)
        return services.CouponPushResult(coupon, True, "pushed")

    monkeypatch.setattr(services, "coupon_push", push)
    return pushed


def url(name, *args):
    return reverse(f"admin:payments_coupon_{name}", args=args)


def with_usage(code="SAVE10", terms=None, payments=()):
    """A coupon and payments that used it: (pi, amount, discount, currency, status, customer)."""
    coupon = coupon_row(code, terms or percent_terms(1000))
    upsert_payment_intents(
        [
            intent(
                pi,
                amount=amount,
                discount=discount,
                currency=currency,
                status=status,
                customer=customer,
                code=code,
            )
            for pi, amount, discount, currency, status, customer in payments
        ]
    )
    return coupon


# --- the list -----------------------------------------------------------------------------------


def test_the_list_shows_status_badges_and_usage(admin_client):
    now = timezone.now()
    coupon_row("LIVE", percent_terms(1250, caps={"usd": 2000}))
    coupon_row("LATER", percent_terms(500, valid_from=now + timedelta(days=2)))
    coupon_row("OVER", percent_terms(500, valid_until=now - timedelta(days=1)))
    coupon_row("OFF", fixed_terms({"usd": 500, "eur": 450}), active=False)
    with_usage(
        "FULL",
        fixed_terms({"usd": 500}, max_redemptions=1),
        [
            ("pi_f1", 4500, 500, "usd", "succeeded", ""),
            ("pi_f2", 4500, 500, "usd", "succeeded", ""),
        ],
    )
    response = admin_client.get(url("changelist"))
    assert response.status_code == 200
    rows = {obj.code: obj for obj in response.context["cl"].result_list}
    admin_obj = response.context["cl"].model_admin
    statuses = {code: admin_obj.status_cell(obj) for code, obj in rows.items()}
    assert ">Active<" in statuses["LIVE"]
    assert ">Scheduled<" in statuses["LATER"]
    assert ">Expired<" in statuses["OVER"]
    assert ">Inactive<" in statuses["OFF"]
    assert ">Used up<" in statuses["FULL"]
    page = response.content.decode()
    assert "12.5 % off" in page and "max $20.00" in page
    assert "€4.50 · $5.00 off" in page
    assert "2 of 1" in page and "1 flagged" in page


# --- the form -----------------------------------------------------------------------------------


def form_data(**overrides):
    data = {
        "code": "spring25",
        "name": "Spring",
        "kind": "percentage",
        "percent_off": "12.5",
        "max_redemptions": "100",
        "max_redemptions_per_customer": "1",
        "product_kinds": ["hour_package"],
        "product_ids": "pkg_10h, pkg_5h",
        "valid_from": "",
        "valid_until": "",
        "currencies-TOTAL_FORMS": "3",
        "currencies-INITIAL_FORMS": "0",
        "currencies-MIN_NUM_FORMS": "0",
        "currencies-MAX_NUM_FORMS": "20",
        "currencies-0-currency": "usd",
        "currencies-0-max_discount": "20",
        "currencies-0-minimum_amount": "30.00",
        "currencies-1-currency": "JPY",
        "currencies-1-minimum_amount": "3000",
    }
    data.update(overrides)
    return data


def test_the_form_says_stripe_coupons_cannot_change(admin_client):
    response = admin_client.get(url("add"))
    assert response.status_code == 200
    assert escape(IMMUTABLE_NOTE) in response.content.decode()


def test_creating_a_coupon_from_the_form(admin_client, no_stripe):
    response = admin_client.post(url("add"), form_data())
    coupon = Coupon.objects.get()
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == url("change", coupon.pk)
    assert (coupon.code, coupon.percent_off_bps, coupon.max_redemptions_per_customer) == (
        "SPRING25",
        1250,
        1,
    )
    assert coupon.product_ids == ["pkg_10h", "pkg_5h"]
    rows = {r.currency: (r.max_discount, r.minimum_amount) for r in coupon.currencies.all()}
    assert rows == {"usd": (2000, 3000), "jpy": (None, 3000)}
    assert no_stripe == [coupon.pk]
    assert AdminAction.objects.filter(action="coupon_create").count() == 1


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"currencies-0-max_discount": "20.001"}, "max_discount", "USD amounts have at most 2"),
        ({"currencies-1-minimum_amount": "30.5"}, "minimum_amount", "JPY amounts have at most 0"),
        ({"currencies-0-currency": "usx"}, "currency", "Not a currency we know"),
        ({"currencies-2-max_discount": "5"}, "", "Say which currency these amounts are in."),
        ({"currencies-0-amount_off": "5"}, "", "USD: a percentage coupon takes no fixed amount"),
        ({"kind": "fixed", "percent_off": ""}, "", "USD: a fixed-amount coupon needs the amount"),
        ({"percent_off": "12.505"}, "percent_off", "Enter a percentage such as 12.5"),
        ({"percent_off": "101"}, "percent_off", "A percentage coupon takes 0.01 % to 100 % off."),
        ({"code": "a b"}, "code", "3 to 64 capital letters"),
    ],
)
def test_the_form_refuses_bad_terms_beside_their_fields(admin_client, overrides, field, message):
    response = admin_client.post(url("add"), form_data(**overrides))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Coupon.objects.exists()


def test_editing_an_inactive_coupon_is_refused_with_the_reason(admin_client):
    coupon = coupon_row("DONE", percent_terms(1000), active=False)
    response = admin_client.get(url("edit", coupon.pk))
    assert "DONE is inactive: create a new coupon instead" in response.content.decode()
    response = admin_client.post(url("edit", coupon.pk), form_data())
    assert response.status_code == 400


def test_editing_prefills_the_terms_and_changes_them(admin_client, no_stripe):
    coupon = coupon_row("EDIT", fixed_terms({"usd": 500, "jpy": 700}))
    page = admin_client.get(url("edit", coupon.pk)).content.decode()
    assert 'value="5.00"' in page and 'value="700"' in page
    data = form_data(
        kind="fixed",
        percent_off="",
        **{
            "currencies-0-currency": "USD",
            "currencies-0-amount_off": "6",
            "currencies-0-max_discount": "",
            "currencies-0-minimum_amount": "",
            "currencies-1-currency": "",
            "currencies-1-minimum_amount": "",
        },
    )
    response = admin_client.post(url("edit", coupon.pk), data)
    assert response.status_code == 302
    coupon.refresh_from_db()
    assert coupon.terms_version == 2
    assert {r.currency: r.amount_off for r in coupon.currencies.all()} == {"usd": 600}


# --- deactivate -------------------------------------------------------------------------------


def test_deactivate_is_a_post_with_a_reason_and_audited(client, no_stripe):
    manager = coupon_manager()
    client.force_login(manager)
    coupon = coupon_row("STOP", percent_terms(1000))
    assert client.get(url("deactivate", coupon.pk)).status_code == 405
    client.post(url("deactivate", coupon.pk), {"reason": ""})
    coupon.refresh_from_db()
    assert coupon.active  # no reason, no change
    response = client.post(url("deactivate", coupon.pk), {"reason": "Leaked on a forum"})
    assert response.status_code == 302
    coupon.refresh_from_db()
    assert (coupon.active, coupon.deactivated_by, coupon.deactivation_reason) == (
        False,
        manager,
        "Leaked on a forum",
    )
    audit = AdminAction.objects.get(action="coupon_deactivate")
    assert (audit.reason, audit.target_id) == ("Leaked on a forum", str(coupon.pk))


def test_only_holders_of_the_permission_deactivate_or_create(client, no_stripe):
    viewer = coupon_manager("viewer", "view_coupon")
    client.force_login(viewer)
    coupon = coupon_row("KEEP", percent_terms(1000))
    assert client.post(url("deactivate", coupon.pk), {"reason": "x"}).status_code == 403
    assert client.post(url("push", coupon.pk)).status_code == 403
    assert client.get(url("add")).status_code == 403
    assert client.post(url("edit", coupon.pk), form_data()).status_code == 403
    page = client.get(url("change", coupon.pk)).content.decode()
    assert 'data-testid="deactivate-form"' not in page
    assert 'data-testid="coupon-edit"' not in page
    coupon.refresh_from_db()
    assert coupon.active


# --- the page and its statistics ----------------------------------------------------------------


def test_the_page_shows_statistics_per_currency(admin_client):
    ana = CustomerFactory(stripe_id="cus_ana")
    coupon = with_usage(
        "STATS",
        percent_terms(1000, max_redemptions=2),
        [
            ("pi_s1", 4500, 500, "usd", "succeeded", "cus_ana"),
            ("pi_s2", 9000, 1000, "usd", "succeeded", "cus_ana"),
            ("pi_s3", 4500, 500, "usd", "succeeded", ""),  # beyond the limit: flagged
            ("pi_s4", 4500, 500, "usd", "requires_payment_method", ""),  # failed: not redeemed
            ("pi_e1", 1800, 200, "eur", "succeeded", ""),
        ],
    )
    Payment.objects.filter(stripe_payment_intent_id="pi_s2").update(amount_refunded=3000)
    stats = {s.currency: s for s in coupon_statistics(coupon=coupon)}
    usd = stats["usd"]
    assert (usd.redemptions, usd.flagged, usd.customers) == (3, 1, 1)
    assert (usd.discount, usd.revenue, usd.order_value) == (2000, 15000, 20000)
    assert (usd.attempts, usd.captured, str(usd.conversion)) == (4, 3, "0.7500")
    assert (stats["eur"].discount, stats["eur"].revenue) == (200, 1800)
    assert ana.coupon_redemptions.count() == 2

    page = admin_client.get(url("change", coupon.pk)).content.decode()
    assert 'data-testid="coupon-statistics"' in page
    assert "$20.00" in page and "$150.00" in page and "75.0 %" in page and "€2.00" in page
    # The limit counts redemptions in every currency: the third and the fourth are flagged.
    assert page.count('data-testid="redemption-flagged"') == 2
    assert stats["eur"].flagged == 1


def test_the_csv_export_streams_every_redemption_and_is_audited(client):
    manager = coupon_manager(
        "exporter", "view_coupon", "export_couponredemption", "view_couponredemption"
    )
    client.force_login(manager)
    coupon = with_usage(
        "CSV",
        fixed_terms({"usd": 500}),
        [
            ("pi_c1", 4500, 500, "usd", "succeeded", ""),
            ("pi_c2", 4500, 600, "usd", "succeeded", ""),
        ],
    )
    response = client.get(url("redemptions_csv", coupon.pk))
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["redeemed_at", "code", "payment_intent"]
    by_pi = {row[2]: row for row in rows[1:]}
    assert by_pi["pi_c1"][6:10] == ["USD", "50.00", "5.00", "45.00"]
    assert by_pi["pi_c2"][-1] == "discount_mismatch"
    assert AdminAction.objects.filter(action="coupon_redemptions_export").count() == 1
    client.force_login(UserFactory(username="nobody"))
    assert client.get(url("redemptions_csv", coupon.pk)).status_code == 403


def test_a_redemption_row_links_its_payment(admin_client):
    coupon = with_usage("LINK", percent_terms(1000), [("pi_l1", 4500, 500, "usd", "succeeded", "")])
    payment = CouponRedemption.objects.get().payment
    page = admin_client.get(url("change", coupon.pk)).content.decode()
    assert reverse("admin:payments_payment_change", args=[payment.pk]) in page


def test_the_coupon_page_reads_a_fixed_number_of_queries(admin_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count(coupon):
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url("change", coupon.pk)).status_code == 200
        return len(ctx.captured_queries)

    few = with_usage("FEW", percent_terms(1000), [("pi_q0", 4500, 500, "usd", "succeeded", "")])
    many = with_usage(
        "MANY",
        percent_terms(1000),
        [(f"pi_m{i}", 4500, 500, "usd" if i % 2 else "eur", "succeeded", "") for i in range(30)],
    )
    assert count(few) == count(many)


def test_the_roles_of_the_groups_fixture():
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    call_command("loaddata", "groups", verbosity=0)
    finance, auditor = UserFactory(username="fin"), UserFactory(username="aud")
    finance.groups.add(Group.objects.get(name="Finance staff"))
    auditor.groups.add(Group.objects.get(name="Read-only auditors"))
    finance = type(finance).objects.get(pk=finance.pk)
    auditor = type(auditor).objects.get(pk=auditor.pk)
    for perm in ("add_coupon", "change_coupon", "deactivate_coupon", "export_couponredemption"):
        assert finance.has_perm(f"payments.{perm}"), perm
        assert not auditor.has_perm(f"payments.{perm}"), perm
    assert auditor.has_perm("payments.view_coupon")
    assert auditor.has_perm("payments.view_couponredemption")
