from .customer import CustomerAdmin
from .other import InstructorAdmin, PaymentMethodAdmin
from .payment import PaymentAdmin

__all__ = ["CustomerAdmin", "InstructorAdmin", "PaymentAdmin", "PaymentMethodAdmin"]
