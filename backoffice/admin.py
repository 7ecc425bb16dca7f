from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from unfold.admin import ModelAdmin
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from .changelist import ChangelistMixin, SearchSpec
from .models import AdminAction
from .sign_in_admin import UserSignInActionsMixin

admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(UserSignInActionsMixin, BaseUserAdmin, ModelAdmin):
    """Unfold's user forms, plus the second-factor column and the "Reset second factor" and
    "Unlock sign-in" actions (backoffice/sign_in_admin.py)."""

    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass


@admin.register(AdminAction)
class AdminActionAdmin(ChangelistMixin, ModelAdmin):
    """The audit trail is append-only: nobody edits or deletes it from the admin."""

    list_display = ["created_at", "actor", "action", "target_repr", "amount", "currency", "result"]
    list_filter = ["action", "result"]
    list_select_related = ["actor"]
    search_spec = SearchSpec(
        ids=(("", "target_id"),),
        number="target_id",
        text=("action", "target_repr", "actor__username"),
        help_text=(
            "Searches: the target's number or whole Stripe id (any case); the action, the "
            "target's description or the staff user name (any part, any case)."
        ),
    )
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# django-q2 ships plain Django admins; re-register them with Unfold's look, same behaviour.
# `django_q` is before `backoffice` in INSTALLED_APPS, so its admin module has run already.
from django_q import admin as q_admin  # noqa: E402
from django_q.models import Failure, OrmQ, Schedule, Success  # noqa: E402

for model, base in (
    (Schedule, q_admin.ScheduleAdmin),
    (Success, q_admin.TaskAdmin),
    (Failure, q_admin.FailAdmin),
    (OrmQ, q_admin.QueueAdmin),  # registered by django-q2 only with the ORM broker
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
        admin.site.register(model, type(f"Unfold{base.__name__}", (base, ModelAdmin), {}))


# API tokens (backoffice/api/admin.py).
from backoffice.api.admin import ApiTokenAdmin  # noqa: E402
from backoffice.models import ApiToken  # noqa: E402

admin.site.register(ApiToken, ApiTokenAdmin)


# The customer e-mail outbox (django-post-office's Email, re-registered).
from backoffice import admin_outbox  # noqa: E402, F401
