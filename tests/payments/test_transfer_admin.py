"""The read-only Transfers list: the mirror as staff read it (instructor, payout, money,
reversals), searchable by Stripe ids in any case, with no way to add or change a row."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from payments.admin.transfer import NOT_OURS
from payments.models import Payout, Transfer, TransferReversal
from tests.factories import InstructorFactory

pytestmark = pytest.mark.django_db

LIST = reverse("admin:payments_transfer_changelist")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def transfers():
    ines = InstructorFactory(
        name="Ines Moreau", email="ines@example.com", stripe_account_id="acct_In"
    )
    payout = Payout.objects.create(instructor=ines, amount=4000, currency="eur")
    ours = Transfer.objects.create(
        stripe_id="tr_OursAbc",
        payout=payout,
        instructor=ines,
        destination="acct_In",
        amount=4000,
        currency="eur",
        amount_reversed=1500,
        created=T0,
    )
    TransferReversal.objects.create(
        stripe_id="trr_Back1", transfer=ours, amount=1500, currency="eur", created=T0
    )
    other = Transfer.objects.create(
        stripe_id="tr_OtherXyz", destination="acct_Else", amount=999, currency="usd", created=T0
    )
    return ours, other


def test_the_list_shows_who_was_paid_what_and_what_came_back(admin_client, transfers):
    body = admin_client.get(LIST).content.decode()
    assert "tr_OursAbc" in body and "Ines Moreau" in body
    assert f"Payout #{transfers[0].payout_id}" in body
    assert "€40.00" in body and "€15.00" in body
    assert "tr_OtherXyz" in body and NOT_OURS in body and "$9.99" in body


@pytest.mark.parametrize("term", ["tr_oursabc", "TR_OURSABC", "acct_in", "ines@", "moreau"])
def test_search_finds_a_transfer_by_id_in_any_case_or_by_instructor(admin_client, transfers, term):
    rows = admin_client.get(LIST, {"q": term}).context["cl"].result_list
    assert [t.stripe_id for t in rows] == ["tr_OursAbc"]


def test_the_page_lists_the_reversals_and_nothing_can_be_changed(admin_client, transfers):
    ours, _ = transfers
    url = reverse("admin:payments_transfer_change", args=[ours.pk])
    body = admin_client.get(url).content.decode()
    assert "trr_Back1" in body and "€15.00" in body
    assert "dashboard.stripe.com/test/connect/transfers/tr_OursAbc" in body
    admin_client.post(url, {"description": "changed"})
    ours.refresh_from_db()
    assert ours.description == ""
    assert admin_client.get(reverse("admin:payments_transfer_add")).status_code == 403


def test_filters_split_our_payouts_from_other_transfers(admin_client, transfers):
    for value, expected in (("payout", ["tr_OursAbc"]), ("other", ["tr_OtherXyz"])):
        rows = admin_client.get(LIST, {"made_by": value}).context["cl"].result_list
        assert [t.stripe_id for t in rows] == expected
    rows = admin_client.get(LIST, {"currency": "usd"}).context["cl"].result_list
    assert [t.stripe_id for t in rows] == ["tr_OtherXyz"]
