"""The step-up page (/admin/step-up/?next=...): a fresh code marks the session verified now and
goes back to `next`; a wrong code is refused and audited, and verifies nothing."""

import html

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from backoffice.models import AdminAction
from backoffice.second_factor import VERIFIED_AT_SESSION_KEY, verified_within
from backoffice.step_up import AUDIT_STEP_UP, ERR_WRONG_CODE, MSG_NO_DEVICE, MSG_VERIFIED
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

STEP_UP = reverse("step_up")
NEXT = "/admin/refunds/refundrequest/7/confirm-approve/"


@pytest.fixture
def user():
    return UserFactory(username="stepper")


@pytest.fixture
def device(user):
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def code_of(device) -> str:
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def logged_in(user) -> Client:
    client = Client(REMOTE_ADDR="192.0.2.10")
    client.force_login(user)
    return client


def test_the_page_asks_for_a_code(user, device):
    response = logged_in(user).get(STEP_UP, {"next": NEXT})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="code"' in page and f'value="{NEXT}"' in page
    assert 'autocomplete="one-time-code"' in page


def test_a_right_code_verifies_the_session_now_and_goes_back(user, device):
    client = logged_in(user)
    response = client.post(STEP_UP, {"next": NEXT, "code": code_of(device)})
    assert response.status_code == 302
    assert response["Location"] == NEXT
    assert VERIFIED_AT_SESSION_KEY in client.session
    row = AdminAction.objects.get()
    assert (row.action, row.result, row.actor) == (AUDIT_STEP_UP, "success", user)
    followed = client.get(NEXT, follow=True)
    assert MSG_VERIFIED in [str(m) for m in followed.context["messages"]]


def test_a_wrong_code_is_refused_audited_and_verifies_nothing(user, device):
    client = logged_in(user)
    wrong = f"{(int(code_of(device)) + 1) % 1_000_000:06d}"
    response = client.post(STEP_UP, {"next": NEXT, "code": wrong})
    assert response.status_code == 400
    assert ERR_WRONG_CODE in response.content.decode()
    assert VERIFIED_AT_SESSION_KEY not in client.session
    row = AdminAction.objects.get()
    assert (row.action, row.result) == (AUDIT_STEP_UP, "failure")


def test_a_backup_code_works_once(user):
    static = StaticDevice.objects.create(user=user, name="backup", confirmed=True)
    StaticToken.objects.create(device=static, token="ab12cd34")
    client = logged_in(user)
    assert client.post(STEP_UP, {"next": NEXT, "code": "ab12cd34"}).status_code == 302
    assert logged_in(user).post(STEP_UP, {"next": NEXT, "code": "ab12cd34"}).status_code == 400


def test_next_off_site_goes_to_the_admin_index(user, device):
    response = logged_in(user).post(
        STEP_UP, {"next": "https://evil.example/phish", "code": code_of(device)}
    )
    assert response["Location"] == reverse("admin:index")


def test_staff_without_a_device_are_told_to_enrol(user):
    response = logged_in(user).get(STEP_UP, {"next": NEXT})
    assert MSG_NO_DEVICE in html.unescape(response.content.decode())
    assert 'name="code"' not in response.content.decode()


def test_anonymous_visitors_are_sent_to_login():
    response = Client().get(STEP_UP)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_verified_within_reads_the_stamp_the_page_writes(user, device, rf):
    client = logged_in(user)
    client.post(STEP_UP, {"next": NEXT, "code": code_of(device)})
    request = rf.get("/")
    request.session = client.session
    assert verified_within(request, 1)
