from django.contrib import admin
from django.template.loader import render_to_string
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import display
from unfold.utils import display_for_label

from backoffice.admin_cells import two_line
from backoffice.changelist import ChangelistMixin
from backoffice.pagination import EstimatedCountPaginator
from payments import selectors
from payments.models import Customer, Payment
from payments.stripe_links import stripe_dashboard_url

from .customer_block import CustomerBlockAdminMixin
from .customer_hours import CustomerHoursMixin
from .customer_privacy import CustomerPrivacyAdminMixin
from .display import PAYMENT_STATUS_COLOURS, customer_label, external_link, money
from .saved_payment_methods import SavedPaymentMethodInline
from .subscription import CustomerSubscriptionInline


class CustomerPaymentInline(TabularInline):
    model = Payment
    show_title = False
    fk_name = "customer"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = [
        "stripe_payment_intent_id",
        "amount_display",
        "status_badge",
        "product_kind",
        "created",
    ]
    readonly_fields = fields
    ordering = ["-created", "-id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @display(description="Amount")
    def amount_display(self, obj):
        return money(obj.amount, obj.currency)

    @display(description="Status")
    def status_badge(self, obj):
        # Inline read-only fields don't apply `label=`; render the badge explicitly.
        return display_for_label(
            (obj.status, obj.get_status_display()), "-", PAYMENT_STATUS_COLOURS
        )


@admin.register(Customer)
class CustomerAdmin(
    ChangelistMixin,
    CustomerBlockAdminMixin,
    CustomerPrivacyAdminMixin,
    CustomerHoursMixin,
    ModelAdmin,
):
    list_display = ["customer_cell", "stripe_id", "payment_count", "last_payment_at", "created"]
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    search_spec = selectors.CUSTOMER_SEARCH
    ordering = ["-created", "-id"]
    inlines = [SavedPaymentMethodInline, CustomerSubscriptionInline, CustomerPaymentInline]
    # The block state and the Block / Unblock form (payments/admin/customer_block.py).
    change_form_outer_before_template = "payments/admin/customer_page_tools.html"
    fieldsets = [
        (None, {"fields": ["summary", "email", "name", "user"]}),
        ("Stripe", {"fields": ["stripe_id", "stripe_link", "livemode", "created"]}),
    ]
    # Email and name mirror Stripe (the sync would overwrite edits); only the link to a local
    # user account is ours to change.
    readonly_fields = [
        "summary",
        "email",
        "name",
        "stripe_id",
        "stripe_link",
        "livemode",
        "created",
    ]

    def has_add_permission(self, request):
        # Customers are created in Stripe and mirrored here.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = selectors.customer_list_annotated(queryset=queryset)
        return queryset

    @display(description="Customer", ordering="email")
    def customer_cell(self, obj):
        return two_line(customer_label(obj), obj.name)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_block": self.has_block_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @display(description="Payments", ordering="payment_count")
    def payment_count(self, obj):
        return obj.payment_count

    @display(description="Last payment", ordering="last_payment_at")
    def last_payment_at(self, obj):
        return obj.last_payment_at

    @display(description="Stripe dashboard")
    def stripe_link(self, obj):
        return external_link(
            stripe_dashboard_url("customer", obj.stripe_id, livemode=obj.livemode), obj.stripe_id
        )

    @display(description="At a glance")
    def summary(self, obj):
        return render_to_string(
            "payments/admin/customer_summary.html",
            {"summary": selectors.customer_summary(customer=obj)},
        )
