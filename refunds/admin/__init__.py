from .queue import RefundRequestAdmin

__all__ = ["RefundRequestAdmin"]
