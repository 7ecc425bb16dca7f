"""backoffice/redaction.py: personal data masked in JSON wherever it sits, and log text with no
card number, secret or whole e-mail address."""

import pytest

from backoffice.redaction import MASK, mask_email, mask_personal_data, redact_text

# A customer.updated / charge.succeeded shaped payload with personal data at several depths.
PAYLOAD = {
    "id": "evt_1",
    "type": "charge.succeeded",
    "data": {
        "object": {
            "id": "ch_1",
            "object": "charge",
            "amount": 19900,
            "currency": "eur",
            "customer": "cus_1",
            "receipt_email": "Jane.Doe@example.com",
            "description": "Course for jane.doe@example.com",
            "billing_details": {
                "name": "Jane Doe",
                "email": "jane.doe@example.com",
                "phone": "+44 20 7946 0958",
                "address": {
                    "line1": "1 Example Street",
                    "line2": None,
                    "city": "London",
                    "postal_code": "SW1A 1AA",
                    "state": "",
                    "country": "GB",
                },
            },
            "shipping": {"name": "Jane Doe", "address": {"line1": "2 Road", "country": "GB"}},
            "metadata": {
                "product_name": "Algebra I",
                "student_name": "Jane",
                "client_ip": "203.0.113.7",
                "instructor_email": "tutor@example.org",
            },
            "payment_method_details": {"card": {"last4": "4242", "brand": "visa"}},
        }
    },
}


def test_personal_data_is_masked_at_any_depth_and_the_rest_stays():
    masked = mask_personal_data(PAYLOAD)
    charge = masked["data"]["object"]
    billing = charge["billing_details"]
    assert billing["name"] == MASK
    assert billing["email"] == f"j{MASK}@example.com"
    assert billing["phone"] == MASK
    assert billing["address"] == {
        "line1": MASK,
        "line2": None,
        "city": MASK,
        "postal_code": MASK,
        "state": "",
        "country": "GB",
    }
    assert charge["shipping"] == {"name": MASK, "address": {"line1": MASK, "country": "GB"}}
    assert charge["receipt_email"] == f"J{MASK}@example.com"
    assert charge["description"] == f"Course for j{MASK}@example.com"
    assert charge["metadata"] == {
        "product_name": "Algebra I",
        "student_name": MASK,
        "client_ip": MASK,
        "instructor_email": f"t{MASK}@example.org",
    }
    # Ids, amounts, card brand and last four, the type: unchanged.
    for key in ("id", "object", "amount", "currency", "customer", "payment_method_details"):
        assert charge[key] == PAYLOAD["data"]["object"][key]
    assert masked["type"] == "charge.succeeded"
    # The input is not changed.
    assert PAYLOAD["data"]["object"]["billing_details"]["name"] == "Jane Doe"
    # No personal value survives anywhere in the text.
    text = str(masked)
    for value in ("Jane Doe", "jane.doe@", "7946", "Example Street", "London", "SW1A", "203.0"):
        assert value not in text, value


def test_lists_and_odd_values():
    assert mask_personal_data([{"email": "a@b.co"}, "x@y.org", 5, None]) == [
        {"email": f"a{MASK}@b.co"},
        f"x{MASK}@y.org",
        5,
        None,
    ]
    assert mask_personal_data({"name": {"first": "Jane"}, "email": 7}) == {
        "name": {"first": MASK},
        "email": MASK,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("customer jane.doe@example.com failed", f"customer j{MASK}@example.com failed"),
        ("card 4242 4242 4242 4242 declined", f"card {MASK}4242 declined"),
        ("card 4000-0000-0000-0341 declined", f"card {MASK}0341 declined"),
        ("pan=4000000000000341", f"pan={MASK}0341"),
        # Not a card: fails the Luhn check, or too short.
        ("order 1234567890123 of 1700000000", "order 1234567890123 of 1700000000"),
        ("key sk_live_51HxYzAbCdEf used", f"key sk_live_{MASK} used"),
        ("rk_test_abc123DEF", f"rk_test_{MASK}"),
        ("secret whsec_abcDEF123 rotated", f"secret whsec_{MASK} rotated"),
        ("token bo_" + "a" * 43, f"token bo_{MASK}"),
        ("Authorization: Bearer abcdefghijkl", f"Authorization: Bearer {MASK}"),
        ("postgres://app:s3cr3t@db:5432/x", f"postgres://app:{MASK}@db:5432/x"),
        ('{"password": "hunter22"}', f'{{"password": "{MASK}"}}'),
        ("pi_3Pabc_secret_XYZ", f"pi_3Pabc_secret_{MASK}"),
        ("refund request 42: gateway error", "refund request 42: gateway error"),
    ],
)
def test_redact_text(text, expected):
    assert redact_text(text) == expected


def test_configured_secret_values_are_replaced_whatever_their_shape():
    assert redact_text("id=ZZZ-custom-value-1 and more", secrets=("custom-value-1",)) == (
        f"id=ZZZ-{MASK} and more"
    )
    assert redact_text("the value custom-value-1 leaked", secrets=("custom-value-1",)) == (
        f"the value {MASK} leaked"
    )


def test_mask_email_keeps_the_first_character_and_the_domain():
    assert mask_email("a.b+c@mail.example.co.uk") == f"a{MASK}@mail.example.co.uk"
    assert mask_email("no address here") == "no address here"
