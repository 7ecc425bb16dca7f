from backoffice.admin_extensions import admin_extend
from payments.models import Payment

from .payment_page import PaymentRefundLinksMixin
from .queue import RefundRequestAdmin

admin_extend(Payment, PaymentRefundLinksMixin)

__all__ = ["RefundRequestAdmin"]
