"""The project's URLs plus a view that fails, for the 500 page's tests."""

from django.urls import path

from backoffice.urls import handler403, handler404, handler500
from backoffice.urls import urlpatterns as project_urls

ERR_BOOM = "a view failed (test)"


def boom(request):
    raise RuntimeError(ERR_BOOM)


urlpatterns = [path("boom/", boom), *project_urls]

__all__ = ["handler403", "handler404", "handler500", "urlpatterns"]
