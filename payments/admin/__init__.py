from .customer import CustomerAdmin
from .other import InstructorAdmin, PaymentMethodAdmin
from .payment import PaymentAdmin
from .webhook import WebhookEventAdmin

__all__ = [
    "CustomerAdmin",
    "InstructorAdmin",
    "PaymentAdmin",
    "PaymentMethodAdmin",
    "WebhookEventAdmin",
]
