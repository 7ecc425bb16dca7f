"""The statement in Chromium, as finance staff use it: from the instructor page's "Statement"
button to the month's statement (a clawback shows in red), another month through the picker,
then the PDF downloaded and its page 1 rendered. Screenshots go to artifacts/statement-*.png
(the statement PDF's page 1 is the issue's)."""

from datetime import UTC, datetime

import pypdfium2
import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from payments.models import EarningEntry
from tests.factories import InstructorFactory, PaymentFactory, UserFactory
from tests.reports.helpers import earning_entry as entry
from tests.reports.helpers import pdf_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
Kind = EarningEntry.Kind


def _world():
    call_command("loaddata", "groups", verbosity=0)
    analyst = UserFactory(username="analyst.statement")
    analyst.groups.add(Group.objects.get(name="Finance staff"))
    ada = InstructorFactory(name="Ada Lovelace", email="ada@tutors.example", bank_account="GB29")
    for day in range(2, 26, 3):
        payment = PaymentFactory(
            instructor=ada, amount=5000 + day * 100, product_name="Analytical engines I"
        )
        entry(
            ada,
            3700 + day * 75,
            when=datetime(2026, 10, day, 12, tzinfo=UTC),
            payment=payment,
            reference=f"payment:{payment.stripe_payment_intent_id}:earning",
        )
    entry(ada, -45000, Kind.PAYOUT, when=datetime(2026, 11, 2, 9, tzinfo=UTC))
    refunded = PaymentFactory(instructor=ada, amount=19900, product_name="Analytical engines II")
    entry(ada, 15000, when=datetime(2026, 10, 28, tzinfo=UTC), payment=refunded)
    entry(ada, -19900, Kind.DISPUTE_LOST, when=datetime(2026, 11, 20, tzinfo=UTC), payment=refunded)
    return analyst, ada


def test_statement_page_and_pdf(live_server, page, screenshot_dir):
    analyst, ada = _world()
    analyst.set_password("pw-statement")
    analyst.save()
    base = live_server.url
    page.goto(f"{base}/admin/login/")
    page.fill("input[name=username]", "analyst.statement")
    page.fill("input[name=password]", "pw-statement")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")

    page.goto(f"{base}/admin/payments/instructor/{ada.pk}/change/")
    page.get_by_role("link", name="Statement").click()
    page.wait_for_url(f"**/admin/payments/instructor/{ada.pk}/statement/")
    summary = page.get_by_test_id("statement-summary")
    assert "November 2026" in summary.inner_text()  # the latest month with entries
    negative = page.get_by_test_id("statement-negative")
    assert negative.is_visible()
    # A negative amount is red.
    colour = page.locator(".money-negative").first.evaluate("e => getComputedStyle(e).color")
    assert colour == "rgb(185, 28, 28)"
    page.screenshot(path=str(screenshot_dir / "statement-page-november.png"), full_page=True)

    page.select_option("select[name=month]", "2026-10")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**month=2026-10**")
    assert "October 2026" in page.get_by_test_id("statement-summary").inner_text()
    assert page.get_by_test_id("section-earnings").is_visible()
    page.screenshot(path=str(screenshot_dir / "statement-page-october.png"), full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download PDF").click()
    download = download_info.value
    assert download.suggested_filename == f"statement-{ada.pk}-2026-10-usd.pdf"
    path = screenshot_dir / download.suggested_filename
    download.save_as(path)
    content = path.read_bytes()
    text = " ".join(pdf_text(content).split())
    assert "Earnings statement: October 2026" in text
    assert "Closing balance on 2026-10-31" in text
    pdf = pypdfium2.PdfDocument(content)
    pdf[0].render(scale=1.5).to_pil().save(screenshot_dir / "statement-pdf-page1.png")
