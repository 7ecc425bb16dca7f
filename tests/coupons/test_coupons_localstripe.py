"""Coupons pushed to the peer (the project's localstripe launcher with
scripts/localstripe_promotion_codes.py) over real HTTP, and mirrored back by the sync and the
webhook handlers through the same upsert."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from backoffice.models import AdminAction
from payments import gateway, webhooks
from payments.coupon_mirror import AUDIT_DEACTIVATED_IN_STRIPE, upsert_promotion_codes
from payments.exceptions import GatewayTimeout, InvalidRequest
from payments.models import Coupon, PromotionCode, WebhookEvent
from payments.services.coupons import (
    MSG_CHANGED_LOCAL,
    MSG_CHANGED_NEW_VERSION,
    coupon_change,
    coupon_create,
    coupon_deactivate,
    coupon_push,
)
from payments.sync_runs import stripe_sync
from tests.coupons.support import coupon_manager, fixed_terms, percent_terms
from tests.payments.webhook_support import make_event

pytestmark = [pytest.mark.stripe, pytest.mark.django_db]


def peer_codes(localstripe, **params):
    response = requests.get(
        f"{localstripe}/v1/promotion_codes", params=params, auth=("sk_test_x", ""), timeout=5
    )
    response.raise_for_status()
    return response.json()["data"]


def process(event_type, obj):
    """Store a Stripe-shaped event and run its handler, as the django-q2 task does."""
    row, _ = webhooks.webhook_event_record(event=make_event(event_type, obj))
    return webhooks.webhook_event_process(event_pk=row.pk)


# --- the peer, through the gateway ------------------------------------------------------------


def test_the_peer_keeps_coupons_in_stripes_shape(localstripe):
    made = gateway.stripe_coupon_create(
        coupon_id="cpn-test-v1",
        name="Welcome",
        amounts_off={"usd": 500, "eur": 450},
        max_redemptions=10,
        redeem_by=timezone.now() + timedelta(days=30),
        metadata={"coupon_pk": 7},
        idempotency_key="coupon:test:v1",
    )
    assert (made.id, made.currency, made.amounts_off) == (
        "cpn-test-v1",
        "eur",  # the first currency in alphabetical order is the coupon's own
        {"eur": 450, "usd": 500},
    )
    assert (made.max_redemptions, made.valid, made.metadata) == (10, True, {"coupon_pk": "7"})
    assert gateway.stripe_coupon_retrieve(coupon_id="cpn-test-v1") == made


def test_a_coupon_id_made_before_answers_resource_already_exists(localstripe):
    kwargs = {"coupon_id": "cpn-dup-v1", "name": "Dup", "percent_off": Decimal("12.50")}
    gateway.stripe_coupon_create(**kwargs, idempotency_key="coupon:dup:a")
    with pytest.raises(InvalidRequest) as exc:
        gateway.stripe_coupon_create(**kwargs, idempotency_key="coupon:dup:b")
    assert exc.value.stripe_code == "resource_already_exists"
    # The same key again replays the first answer instead.
    replayed = gateway.stripe_coupon_create(**kwargs, idempotency_key="coupon:dup:a")
    assert replayed.percent_off == Decimal("12.50")
    response = requests.post(
        f"{localstripe}/v1/coupons/cpn-dup-v1",
        data={"percent_off": "20"},
        auth=("sk_test_x", ""),
        timeout=5,
    )
    assert response.status_code == 400
    assert "cannot be changed" in response.json()["error"]["message"]


def test_promotion_codes_one_active_spelling_filters_and_minimums(localstripe):
    gateway.stripe_coupon_create(
        coupon_id="cpn-a", name="A", amounts_off={"usd": 500}, idempotency_key="c:a"
    )
    first = gateway.stripe_promotion_code_create(
        coupon_id="cpn-a",
        code="SPRING-5",
        minimums={"usd": 2000, "eur": 1800, "gbp": 0},
        metadata={"coupon_pk": 1},
        idempotency_key="p:a",
    )
    assert first.id.startswith("promo_") and first.active
    assert first.minimums == {"eur": 1800, "usd": 2000}  # a zero minimum is no restriction
    assert first.coupon.amounts_off == {"usd": 500}
    with pytest.raises(InvalidRequest) as exc:
        gateway.stripe_promotion_code_create(
            coupon_id="cpn-a", code="spring-5", idempotency_key="p:b"
        )
    assert exc.value.param == "code"
    off = gateway.stripe_promotion_code_update(
        promotion_code_id=first.id, active=False, idempotency_key="p:a:off"
    )
    assert off.active is False
    second = gateway.stripe_promotion_code_create(
        coupon_id="cpn-a", code="spring-5", idempotency_key="p:c"
    )
    with pytest.raises(InvalidRequest):  # reactivating the old spelling: taken again
        gateway.stripe_promotion_code_update(
            promotion_code_id=first.id, active=True, idempotency_key="p:a:on"
        )
    assert [c.id for c in gateway.stripe_promotion_code_list(code="Spring-5")] == [
        second.id,
        first.id,
    ]
    assert [c.id for c in gateway.stripe_promotion_code_list(active=False)] == [first.id]
    assert gateway.stripe_promotion_code_list(coupon_id="nope") == []
    types = [
        e["type"]
        for e in requests.get(
            f"{localstripe}/v1/events", auth=("sk_test_x", ""), timeout=5, params={"limit": 50}
        ).json()["data"]
    ]
    assert types.count("promotion_code.created") == 2
    assert types.count("promotion_code.updated") == 1
    assert types.count("coupon.created") == 1


# --- the services -------------------------------------------------------------------------------


def test_create_pushes_a_coupon_and_promotion_code_and_mirrors_them(localstripe):
    manager = coupon_manager()
    coupon = coupon_create(
        code="welcome10",
        terms=percent_terms(1250, caps={"usd": 2000}, minimums={"usd": 3000, "jpy": 3000}),
        acting_user=manager,
    )
    assert coupon.code == "WELCOME10"
    assert coupon.stripe_state == Coupon.StripeState.SYNCED, coupon.stripe_error
    assert coupon.stripe_coupon_id == f"cpn-{coupon.pk}-v1"
    (code,) = peer_codes(localstripe)
    assert code["id"] == coupon.stripe_promotion_code_id
    assert (code["code"], code["active"], code["coupon"]["percent_off"]) == (
        "WELCOME10",
        True,
        12.5,
    )
    assert code["restrictions"]["minimum_amount_currency"] == "jpy"
    assert code["restrictions"]["currency_options"] == {"usd": {"minimum_amount": 3000}}
    mirrored = PromotionCode.objects.get()
    assert (mirrored.coupon, mirrored.stripe_id, mirrored.active) == (coupon, code["id"], True)
    assert mirrored.coupon_percent_off == Decimal("12.50")
    assert AdminAction.objects.filter(action="coupon_create", target_id=str(coupon.pk)).exists()


def test_changing_stripe_terms_makes_a_new_version_and_retires_the_old_code(localstripe):
    manager = coupon_manager()
    coupon = coupon_create(code="FIVE", terms=fixed_terms({"usd": 500}), acting_user=manager)
    first_code = coupon.stripe_promotion_code_id
    changed, message = coupon_change(
        coupon=coupon, terms=fixed_terms({"usd": 700, "eur": 600}), acting_user=manager
    )
    assert message == MSG_CHANGED_NEW_VERSION.format(code="FIVE", version=2)
    assert changed.stripe_state == Coupon.StripeState.SYNCED, changed.stripe_error
    assert changed.stripe_coupon_id == f"cpn-{coupon.pk}-v2"
    assert changed.stripe_previous_promotion_code_id == ""
    codes = {c["id"]: c for c in peer_codes(localstripe)}
    assert codes[first_code]["active"] is False
    assert codes[changed.stripe_promotion_code_id]["active"] is True
    assert codes[changed.stripe_promotion_code_id]["coupon"]["currency_options"] == {
        "eur": {"amount_off": 600},
        "usd": {"amount_off": 700},
    }
    assert set(PromotionCode.objects.filter(coupon=coupon).values_list("active", flat=True)) == {
        True,
        False,
    }
    audit = AdminAction.objects.get(action="coupon_change")
    assert audit.details["before"]["currencies"] == {
        "usd": {"amount_off": 500, "max_discount": None, "minimum_amount": 0}
    }
    assert audit.details["new_stripe_version"] is True


def test_changing_only_our_rules_sends_nothing_to_stripe(localstripe):
    manager = coupon_manager()
    coupon = coupon_create(code="OURS", terms=percent_terms(1000), acting_user=manager)
    changed, message = coupon_change(
        coupon=coupon,
        terms=percent_terms(1000, caps={"usd": 1500}, max_redemptions_per_customer=1),
        acting_user=manager,
    )
    assert message == MSG_CHANGED_LOCAL.format(code="OURS")
    assert (changed.terms_version, changed.stripe_promotion_code_id) == (
        1,
        coupon.stripe_promotion_code_id,
    )
    assert len(peer_codes(localstripe)) == 1


def test_deactivating_switches_the_promotion_code_off_at_stripe(localstripe):
    manager = coupon_manager()
    coupon = coupon_create(code="BYE", terms=percent_terms(500), acting_user=manager)
    done = coupon_deactivate(coupon=coupon, reason="Campaign over", acting_user=manager)
    assert (done.active, done.stripe_state) == (False, Coupon.StripeState.SYNCED)
    (code,) = peer_codes(localstripe)
    assert code["active"] is False
    assert PromotionCode.objects.get().active is False
    audit = AdminAction.objects.get(action="coupon_deactivate")
    assert (audit.reason, audit.actor) == ("Campaign over", manager)


def test_a_push_whose_answers_were_lost_finds_what_it_made_instead_of_making_more(localstripe):
    manager = coupon_manager()
    coupon = coupon_create(code="LOST", terms=percent_terms(1500), acting_user=manager, push=False)
    # An earlier attempt made both objects at Stripe, then lost the answers (a timeout) and
    # its idempotency keys expired: only the objects are left.
    gateway.stripe_coupon_create(
        coupon_id=f"cpn-{coupon.pk}-v1",
        name="Ten off",
        percent_off=Decimal("15.00"),
        idempotency_key="an-old-key",
    )
    made = gateway.stripe_promotion_code_create(
        coupon_id=f"cpn-{coupon.pk}-v1", code="LOST", idempotency_key="another-old-key"
    )
    result = coupon_push(coupon=coupon)
    assert result.pushed, result.errors
    coupon.refresh_from_db()
    assert (coupon.stripe_coupon_id, coupon.stripe_promotion_code_id) == (
        f"cpn-{coupon.pk}-v1",
        made.id,
    )
    assert len(peer_codes(localstripe)) == 1


def test_a_push_refused_by_stripe_is_recorded_and_resumes(localstripe):
    manager = coupon_manager()
    # Someone made an active code with our spelling in the dashboard: Stripe refuses ours.
    gateway.stripe_coupon_create(
        coupon_id="dashboard", name="D", percent_off=Decimal("5"), idempotency_key="d"
    )
    squatter = gateway.stripe_promotion_code_create(
        coupon_id="dashboard", code="TAKEN", idempotency_key="d:p"
    )
    coupon = coupon_create(code="TAKEN", terms=percent_terms(1000), acting_user=manager)
    assert coupon.stripe_state == Coupon.StripeState.FAILED
    assert "already exists" in coupon.stripe_error
    gateway.stripe_promotion_code_update(
        promotion_code_id=squatter.id, active=False, idempotency_key="d:p:off"
    )
    result = coupon_push(coupon=coupon)
    assert result.pushed
    coupon.refresh_from_db()
    assert coupon.stripe_state == Coupon.StripeState.SYNCED
    assert coupon.stripe_coupon_id == f"cpn-{coupon.pk}-v1"  # made by the first attempt


# --- mirrored back ----------------------------------------------------------------------------


def test_the_sync_mirrors_every_promotion_code_and_a_rerun_changes_nothing(localstripe):
    manager = coupon_manager()
    ours = coupon_create(code="SYNCED", terms=percent_terms(1000), acting_user=manager)
    gateway.stripe_coupon_create(
        coupon_id="elsewhere", name="E", amounts_off={"usd": 300}, idempotency_key="e"
    )
    gateway.stripe_promotion_code_create(coupon_id="elsewhere", code="DASH", idempotency_key="e:p")
    PromotionCode.objects.all().delete()

    report = stripe_sync()
    assert report.status == "succeeded", report.error
    assert report.counts["promotion_code"]["created"] == 2
    by_code = {p.code: p for p in PromotionCode.objects.all()}
    assert by_code["SYNCED"].coupon == ours
    assert by_code["DASH"].coupon is None  # not ours: shown, never linked
    assert by_code["DASH"].coupon_amount_off == 300
    again = stripe_sync()
    assert again.counts["promotion_code"] == {
        "created": 0,
        "updated": 0,
        "unchanged": 2,
        "skipped": 0,
    }


def test_a_code_switched_off_in_the_dashboard_deactivates_our_coupon(localstripe):
    manager = coupon_manager()
    coupon = coupon_create(code="DASHOFF", terms=percent_terms(1000), acting_user=manager)
    # The dashboard switches it off; Stripe sends promotion_code.updated.
    off = gateway.stripe_promotion_code_update(
        promotion_code_id=coupon.stripe_promotion_code_id, active=False, idempotency_key="dash"
    )
    status = process("promotion_code.updated", {"id": off.id, "object": "promotion_code"})
    assert status == WebhookEvent.Status.PROCESSED
    coupon.refresh_from_db()
    assert coupon.active is False
    audit = AdminAction.objects.get(action=AUDIT_DEACTIVATED_IN_STRIPE)
    assert audit.actor is None
    # Replayed: nothing more happens.
    process("promotion_code.updated", {"id": off.id, "object": "promotion_code"})
    assert AdminAction.objects.filter(action=AUDIT_DEACTIVATED_IN_STRIPE).count() == 1


def test_a_deleted_coupon_is_mirrored_invalid_through_its_codes(localstripe):
    manager = coupon_manager()
    coupon = coupon_create(code="GONE", terms=percent_terms(1000), acting_user=manager)
    requests.delete(
        f"{localstripe}/v1/coupons/{coupon.stripe_coupon_id}", auth=("sk_test_x", ""), timeout=5
    ).raise_for_status()
    status = process("coupon.deleted", {"id": coupon.stripe_coupon_id, "object": "coupon"})
    assert status == WebhookEvent.Status.PROCESSED
    assert PromotionCode.objects.get(coupon=coupon).coupon_valid is False


def test_a_promotion_code_event_with_a_foreign_id_fails_without_retry(localstripe):
    status = process("promotion_code.updated", {"id": "cpn_not_a_code", "object": "promotion_code"})
    assert status == WebhookEvent.Status.FAILED
    assert upsert_promotion_codes([]).changed == 0


# --- lost answers and staff edits during a push ---------------------------------------------


def _code_create_then(monkeypatch, after):
    """stripe_promotion_code_create makes the code at the peer, then runs `after` (once)."""
    real = gateway.stripe_promotion_code_create
    calls = []

    def create(**kwargs):
        made = real(**kwargs)
        if not calls:
            calls.append(made)
            after()
        return made

    monkeypatch.setattr(gateway, "stripe_promotion_code_create", create)
    return calls


def _lose_the_answer():
    raise GatewayTimeout()


def _active_codes(localstripe, coupon):
    return [
        c
        for c in peer_codes(localstripe, code=coupon.code, active="true")
        if c["metadata"].get("coupon_pk") == str(coupon.pk)
    ]


def test_deactivating_after_a_timed_out_code_create_switches_the_unrecorded_code_off(
    localstripe, monkeypatch
):
    manager = coupon_manager()
    _code_create_then(monkeypatch, _lose_the_answer)
    coupon = coupon_create(code="GHOST", terms=percent_terms(1000), acting_user=manager)
    assert coupon.stripe_state == Coupon.StripeState.FAILED
    assert (bool(coupon.stripe_coupon_id), coupon.stripe_promotion_code_id) == (True, "")
    assert len(_active_codes(localstripe, coupon)) == 1  # live at Stripe, id unknown to us
    done = coupon_deactivate(coupon=coupon, reason="Campaign over", acting_user=manager)
    assert done.stripe_state == Coupon.StripeState.SYNCED, done.stripe_error
    assert _active_codes(localstripe, coupon) == []


def test_a_new_version_after_a_timed_out_code_create_retires_the_unrecorded_code(
    localstripe, monkeypatch
):
    manager = coupon_manager()
    _code_create_then(monkeypatch, _lose_the_answer)
    coupon = coupon_create(code="AGAIN", terms=percent_terms(1000), acting_user=manager)
    assert coupon.stripe_promotion_code_id == ""
    changed, _ = coupon_change(coupon=coupon, terms=percent_terms(2000), acting_user=manager)
    assert changed.stripe_state == Coupon.StripeState.SYNCED, changed.stripe_error
    (live,) = _active_codes(localstripe, coupon)
    assert (live["id"], live["metadata"]["terms_version"]) == (
        changed.stripe_promotion_code_id,
        "2",
    )


def test_deactivating_during_a_push_ends_with_the_code_off(localstripe, monkeypatch):
    manager = coupon_manager()
    coupon = coupon_create(code="RACE", terms=percent_terms(1000), acting_user=manager, push=False)
    outcome = {}

    def deactivate():
        # Another request while the push holds the lease: its own push is refused as busy.
        outcome["row"] = coupon_deactivate(coupon=coupon, reason="Stop", acting_user=manager)

    _code_create_then(monkeypatch, deactivate)
    result = coupon_push(coupon=coupon)
    assert outcome["row"].stripe_state == Coupon.StripeState.PENDING
    assert result.pushed, result.errors
    coupon.refresh_from_db()
    assert (coupon.active, coupon.stripe_state) == (False, Coupon.StripeState.SYNCED)
    assert _active_codes(localstripe, coupon) == []


def test_an_edit_during_a_push_is_pushed_and_keeps_no_outdated_ids(localstripe, monkeypatch):
    manager = coupon_manager()
    coupon = coupon_create(code="EDIT", terms=percent_terms(1000), acting_user=manager, push=False)

    def edit():
        coupon_change(coupon=coupon, terms=percent_terms(3000), acting_user=manager)

    _code_create_then(monkeypatch, edit)
    result = coupon_push(coupon=coupon)
    assert result.pushed, result.errors
    coupon.refresh_from_db()
    assert (coupon.terms_version, coupon.stripe_state) == (2, Coupon.StripeState.SYNCED)
    assert coupon.stripe_coupon_id == f"cpn-{coupon.pk}-v2"
    (live,) = _active_codes(localstripe, coupon)
    assert live["id"] == coupon.stripe_promotion_code_id
    assert live["coupon"]["percent_off"] == 30


def test_a_sync_page_read_before_a_deactivation_never_switches_the_code_back_on(
    localstripe, monkeypatch
):
    manager = coupon_manager()
    coupon = coupon_create(code="STALE", terms=percent_terms(1000), acting_user=manager)
    real_pages = gateway.stripe_promotion_code_list_pages
    # The sync read its page while the code was on; the push switched it off meanwhile.
    read_before = [list(real_pages())]
    coupon_deactivate(coupon=coupon, reason="Campaign over", acting_user=manager)
    assert PromotionCode.objects.get().active is False
    monkeypatch.setattr(gateway, "stripe_promotion_code_list_pages", lambda **kw: read_before[0])
    report = stripe_sync()
    assert report.status == "succeeded", report.error
    assert PromotionCode.objects.get().active is False
    # Outside a sync page (a webhook re-reads the code fresh) an active code is mirrored
    # active: that is how a reactivation in the dashboard arrives.
    (fresh,) = read_before[0][0].items
    upsert_promotion_codes([fresh])
    assert PromotionCode.objects.get().active is True
