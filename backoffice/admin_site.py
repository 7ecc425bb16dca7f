from django.conf import settings


def environment_callback(request):
    """The coloured label in Unfold's header: staff must always see whether money is real."""
    if settings.STRIPE_LIVEMODE:
        return ["Live", "danger"]
    if settings.DEBUG:
        return ["Demo / test mode", "warning"]
    return ["Test mode", "info"]
