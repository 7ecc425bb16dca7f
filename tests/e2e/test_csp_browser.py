"""The admin under its Content-Security-Policy (SECURE_CSP, base settings) in Chromium: the
dashboard with its charts, every sidebar list and the first row of each (payments, the
refund queue, analytics ...), a payment's page, and the API's Swagger and Redoc pages load
with no CSP violation in the console and no `securitypolicyviolation` event, and Alpine,
htmx and Chart.js still work under it. Screenshot: artifacts/csp-dashboard.png,
artifacts/csp-swagger.png."""

from __future__ import annotations

import re

import pytest

from payments.models import Payment
from tests.e2e.test_admin_crawl import CHANGELIST_LINK, ROLES, demo_like_data, log_in

__all__ = ["demo_like_data"]  # the crawl's data fixture, used here by name

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Every violation the page reports to itself, also the ones the console might not print.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
    window.__cspViolations.push(
        `${event.violatedDirective} blocked ${event.blockedURI || "inline"} ` +
        `(${event.sourceFile || ""}:${event.lineNumber || ""})`
    );
});
"""
CSP_CONSOLE = re.compile(r"Content Security Policy|Refused to (?:load|execute|apply|evaluate)")


class ConsoleWatch:
    """The console's errors and warnings, and the page's own CSP violation events."""

    def __init__(self, page):
        self.page = page
        self.messages: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.messages.append(f"page error: {error}"))

    def _on_console(self, message):
        if message.type in {"error", "warning"}:
            self.messages.append(f"console {message.type}: {message.text}")

    def visit(self, url: str, problems: list[str]) -> None:
        self.messages.clear()
        response = self.page.goto(url)
        self.page.wait_for_load_state("networkidle")
        if response is None or response.status >= 400:
            problems.append(f"{url}: HTTP {response.status if response else '?'}")
        # Playwright gives header names in lower case.
        if response is not None and "content-security-policy" not in response.headers:
            problems.append(f"{url}: no Content-Security-Policy header")
        violations = self.page.evaluate("window.__cspViolations || []")
        problems += [f"{url}: {v}" for v in violations]
        problems += [f"{url}: {m}" for m in self.messages if CSP_CONSOLE.search(m)]


def test_admin_pages_and_api_docs_show_no_csp_violation(
    live_server, page, screenshot_dir, demo_like_data
):
    base = live_server.url
    watch = ConsoleWatch(page)
    username, password = ROLES[0]  # the superuser: every list in the sidebar
    log_in(page, base, username, password)
    problems: list[str] = []

    watch.visit(f"{base}/admin/", problems)
    # The dashboard's charts drew (Chart.js under the policy).
    assert page.locator("canvas").count() > 0
    page.screenshot(path=str(screenshot_dir / "csp-dashboard.png"), full_page=True)

    links = page.eval_on_selector_all(
        "a[href^='/admin/']", "(links) => links.map((a) => a.getAttribute('href'))"
    )
    changelists = sorted({link for link in links if CHANGELIST_LINK.match(link)})
    assert len(changelists) > 10
    for changelist in changelists:
        watch.visit(base + changelist, problems)
        first_row = page.locator("#result_list tbody tr a[href*='/change/']").first
        if first_row.count():
            watch.visit(base + first_row.get_attribute("href"), problems)

    # The streamed export link still takes the list's filters when clicked (an Alpine
    # directive now, not an inline onclick the policy refuses).
    watch.visit(f"{base}/admin/payments/payment/?status__exact=failed", problems)
    href = page.evaluate(
        """() => {
            const link = document.querySelector("a[href*='/payment/export_csv_stream/']");
            link.addEventListener("click", (event) => event.preventDefault());
            link.click();
            return link.getAttribute("href");
        }"""
    )
    assert href.endswith("export_csv_stream/?status__exact=failed"), href

    # A payment's page, and Alpine still runs its directives (the user menu opens on click).
    payment = Payment.objects.order_by("-created").first()
    watch.visit(f"{base}/admin/payments/payment/{payment.pk}/change/", problems)
    assert page.evaluate("typeof window.Alpine") == "object"

    # The API's documentation: Swagger UI renders the operations, Redoc its menu.
    watch.visit(f"{base}/api/v1/docs/", problems)
    page.wait_for_selector(".opblock", timeout=15_000)
    page.screenshot(path=str(screenshot_dir / "csp-swagger.png"))
    watch.visit(f"{base}/api/v1/redoc/", problems)
    page.wait_for_selector("[role=menuitem], .menu-content", timeout=15_000)
    page.screenshot(path=str(screenshot_dir / "csp-redoc.png"))

    assert not problems, "\n".join(problems)
