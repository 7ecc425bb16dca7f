"""In a real browser: a superuser adds a schedule by choosing a job from the registry's list;
malformed arguments come back with the reason beside the field; the saved schedule is on the
Scheduled jobs page and in the audit trail. Screenshots: artifacts/schedule-form-refused.png,
artifacts/schedule-form-saved.png."""

import pytest
from django_q.models import Schedule

from backoffice.models import AdminAction
from management.admin import AUDIT_SCHEDULE_CREATE
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

JOB = "management.jobs.cleanup_old_data"


def test_a_schedule_is_chosen_from_the_registry_and_bad_arguments_are_refused(
    live_server, page, screenshot_dir
):
    UserFactory(username="root", is_superuser=True)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")

    page.goto(f"{live_server.url}/admin/django_q/schedule/add/")
    job = page.locator("select[name=func]")
    assert job.locator(f'option[value="{JOB}"]').count() == 1
    assert job.locator('option[value="os.system"]').count() == 0
    assert page.locator("[name=hook]").count() == 0
    page.fill("input[name=name]", "Nightly clean-up")
    job.select_option(JOB)
    page.fill("textarea[name=args]", "1, (")
    page.locator("[name=_save]").click()
    page.wait_for_load_state()
    assert page.get_by_text("Arguments must be Python literals").is_visible()
    page.screenshot(path=str(screenshot_dir / "schedule-form-refused.png"), full_page=True)
    assert not Schedule.objects.filter(name="Nightly clean-up").exists()

    page.fill("textarea[name=args]", "")
    page.fill("textarea[name=kwargs]", "{'now': None}")
    page.locator("[name=_save]").click()
    page.wait_for_url(f"{live_server.url}/admin/django_q/schedule/")
    assert page.get_by_text("Nightly clean-up").first.is_visible()
    page.screenshot(path=str(screenshot_dir / "schedule-form-saved.png"))
    row = Schedule.objects.get(name="Nightly clean-up")
    assert row.func == JOB
    assert AdminAction.objects.filter(action=AUDIT_SCHEDULE_CREATE, target_id=str(row.pk)).exists()
