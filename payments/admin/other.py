from django.contrib import admin
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import display

from backoffice.pagination import EstimatedCountPaginator
from payments.models import Instructor, PaymentMethod


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ModelAdmin):
    list_display = ["stripe_id", "customer", "method", "expiry", "is_default", "created"]
    list_select_related = ["customer"]
    list_filter = [("type", ChoicesDropdownFilter), "is_default"]
    search_fields = ["=stripe_id"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    readonly_fields = [
        "stripe_id",
        "customer",
        "type",
        "card_brand",
        "card_last4",
        "card_exp_month",
        "card_exp_year",
        "is_default",
        "created",
    ]

    def has_add_permission(self, request):
        return False

    @display(description="Method")
    def method(self, obj):
        return str(obj)

    @display(description="Expires")
    def expiry(self, obj):
        if obj.card_exp_month and obj.card_exp_year:
            return f"{obj.card_exp_month:02d}/{obj.card_exp_year}"
        return "—"


@admin.register(Instructor)
class InstructorAdmin(ModelAdmin):
    list_display = ["name", "email", "stripe_account_id"]
    search_fields = ["^name", "=email", "=stripe_account_id"]
