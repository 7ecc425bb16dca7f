from payments.admin.payment import payment_admin_extend

from .payment_page import PaymentRefundLinksMixin
from .queue import RefundRequestAdmin

payment_admin_extend(PaymentRefundLinksMixin)

__all__ = ["RefundRequestAdmin"]
