"""Every page carries Django's Content-Security-Policy (base settings, so the demo and the e2e
tests run under it); the API docs' inline start-up script carries the request's nonce.
tests/e2e/test_csp_browser.py checks in Chromium that nothing on the admin's pages breaks it."""

import re

import pytest

pytestmark = pytest.mark.django_db

NONCE = re.compile(r"'nonce-([^']+)'")


def policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def test_admin_pages_carry_the_policy(admin_client):
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    directives = policy(response)
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in directives["script-src"]
    # No third-party origin anywhere in the policy.
    assert not [v for values in directives.values() for v in values if "://" in v]


def test_a_page_using_the_nonce_gets_a_fresh_one_per_request(admin_client):
    # Django adds the nonce to the header only on pages whose template used it.
    assert not NONCE.search(admin_client.get("/admin/").headers["Content-Security-Policy"])
    first = NONCE.search(admin_client.get("/api/v1/docs/").headers["Content-Security-Policy"])
    second = NONCE.search(admin_client.get("/api/v1/docs/").headers["Content-Security-Policy"])
    assert first and second and first.group(1) != second.group(1)


@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_api_docs_inline_scripts_carry_the_nonce_and_load_nothing_third_party(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    inline_scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    if inline_scripts:
        nonce = NONCE.search(response.headers["Content-Security-Policy"]).group(1)
        for attributes in inline_scripts:
            assert f'nonce="{nonce}"' in attributes, attributes
    assert "fonts.googleapis.com" not in html
    assert not re.findall(r"""(?:src|href)=["']https?://""", html)


def test_only_redocs_badge_image_may_come_from_elsewhere(admin_client):
    directives = policy(admin_client.get("/api/v1/redoc/"))
    third_party = {
        (name, value) for name, values in directives.items() for value in values if "://" in value
    }
    assert third_party == {("img-src", "https://cdn.redoc.ly")}
    assert directives["script-src"] == policy(admin_client.get("/admin/"))["script-src"]


def test_the_streamed_export_link_keeps_the_filters_without_an_inline_handler(admin_client):
    html = admin_client.get("/admin/payments/payment/?status__exact=failed").content.decode()
    link = re.search(r'<a href="/admin/payments/payment/export_csv_stream/"[^>]*>', html).group(0)
    assert "onclick" not in link
    assert "x-on:click=" in link
