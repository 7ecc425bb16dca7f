"""Bad input never answers 500 from the API either: every list endpoint registered with the
router, with each of its filters (discovered from its FilterSet), its pager's parameters and
`ordering` set to garbage, answers 200 (nothing matched) or 400 with the error shape; a detail
endpoint answers a bad id with 404 (or 400). The values are the admin sweep's
(tests/backoffice/bad_input_support.py)."""

import pytest
from django.urls import NoReverseMatch, reverse

from backoffice.api import urls as api_urls
from backoffice.api.registry import api_router
from tests.backoffice.bad_input_support import BAD_IDS, GARBAGE

pytestmark = pytest.mark.django_db

assert api_urls  # importing it registers every app's endpoints (autodiscover of api.py)
ENDPOINTS = sorted(api_router.registry, key=lambda entry: entry[2])
# Parameters every list may read besides its filters: the pagers' and DRF's ordering.
COMMON_PARAMS = ("cursor", "page", "page_size", "ordering", "id__in", "zzz")


def list_params(viewset) -> list[str]:
    params = []
    filterset_class = getattr(viewset, "filterset_class", None)
    if filterset_class is not None:
        for name, spec in filterset_class.base_filters.items():
            suffixes = getattr(spec.field_class.widget, "suffixes", None) or getattr(
                spec.extra.get("widget"), "suffixes", None
            )
            params += [f"{name}_{suffix}" for suffix in suffixes] if suffixes else [name]
    return list(dict.fromkeys([*params, *COMMON_PARAMS]))


def assert_answered(response, path, params=None):
    assert response.status_code < 500, (path, params, response.status_code)
    if response.status_code == 400:
        assert isinstance(response.json(), dict), (path, params)


@pytest.mark.parametrize(
    ("prefix", "viewset", "basename"), ENDPOINTS, ids=[entry[2] for entry in ENDPOINTS]
)
def test_no_api_list_answers_garbage_with_a_server_error(api_roles, prefix, viewset, basename):
    sweep_endpoint(api_roles["superuser"], prefix, viewset, basename)


def sweep_endpoint(client, prefix, viewset, basename):
    try:
        url = reverse(f"api:{basename}-list")
    except NoReverseMatch:
        url = None
    if url is not None:
        for param in list_params(viewset):
            for value in GARBAGE:
                assert_answered(client.get(url, {param: value}), url, {param: value})
    try:
        reverse(f"api:{basename}-detail", args=["1"])
    except NoReverseMatch:
        assert url is not None, "an endpoint with neither a list nor a detail route"
        return
    for bad in BAD_IDS:
        path = f"/api/v1/{prefix}/{bad}/"
        assert_answered(client.get(path), path)
