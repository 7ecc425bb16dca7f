"""How an app adds to another app's admin page without that app importing it.

Apps depend one way (DESIGN.md): payments knows nothing of refunds or reports, yet the payment
page carries refund links and exports. The higher app calls `admin_extend(Payment, Mixin)`
from its admin module; the model's registered admin becomes the original class with every
mixin added so far in front of it (so a mixin's actions, fieldsets and URLs win). Works
whichever admin module Django's autodiscovery imports first, and is idempotent.
"""

from __future__ import annotations

from django.contrib import admin

_original: dict[type, type] = {}
_mixins: dict[type, list[type]] = {}


def admin_extend(model, mixin: type, *, site: admin.AdminSite = admin.site) -> None:
    """Put `mixin` in front of `model`'s registered ModelAdmin class on `site`."""
    mixins = _mixins.setdefault(model, [])
    if mixin in mixins:
        return
    base = _original.setdefault(model, type(site.get_model_admin(model)))
    mixins.append(mixin)
    site.unregister(model)
    site.register(model, type(base.__name__, (*mixins, base), {"__module__": base.__module__}))
