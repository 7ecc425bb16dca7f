"""backoffice.admin_rows renders exactly the cells Unfold's own renderer does."""

import pytest
from django.contrib import admin
from unfold.templatetags.unfold_list import items_for_result

from backoffice.admin_rows import fast_rows
from payments.models import Payment
from refunds.models import RefundRequest
from tests.factories import PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows():
    user = UserFactory()
    payments = [PaymentFactory(amount=10**6), PaymentFactory(failed=True)]
    payments.append(PaymentFactory(customer=None, currency="jpy", amount=5000))
    RefundRequest.objects.bulk_create(
        [
            RefundRequest(
                payment=payments[0], amount=100 + i, currency="usd", requested_by=user, status=s
            )
            for i, s in enumerate(["pending", "approved", "failed", "pending"])
        ]
    )


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (Payment, ""),
        (Payment, "?status__exact=failed"),
        (RefundRequest, ""),
        (RefundRequest, "?status__exact=pending"),
    ],
)
def test_every_cell_matches_unfolds_renderer(rows, admin_client, model, query):
    opts = model._meta
    response = admin_client.get(f"/admin/{opts.app_label}/{opts.model_name}/{query}")
    assert response.status_code == 200
    cl = response.context["cl"]
    fast = fast_rows(cl)
    assert fast is not None and len(fast) == len(cl.result_list) > 0
    for row, result in zip(fast, cl.result_list, strict=True):
        expected = [str(cell) for cell in items_for_result(cl, result, None)]
        assert [str(cell) for cell in row] == expected
        assert row.html == "".join(expected)
        assert row.html in response.content.decode()


def test_a_page_unfold_must_render_falls_back(rows, admin_client, monkeypatch):
    cl = admin_client.get("/admin/refunds/refundrequest/").context["cl"]
    assert fast_rows(cl) is not None
    model_admin = admin.site.get_model_admin(RefundRequest)
    monkeypatch.setattr(type(model_admin), "list_sections", ["x"], raising=False)
    assert fast_rows(cl) is None
