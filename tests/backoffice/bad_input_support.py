"""Garbage for every admin page: the values, the parameters each changelist reads, and the
pages each admin mounts. Discovered at run time from admin.site, so every ModelAdmin (ours, the
libraries' and any added later) is covered without a list to keep up to date. Shared by the
SQLite test and its PostgreSQL variant."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

from django.contrib import admin
from django.test import RequestFactory
from django.urls import URLPattern

# What a hand-edited or hostile URL carries: integers past every column's range (an overflow at
# query time on SQLite, NumericValueOutOfRange on PostgreSQL), negatives, words, a NUL
# (PostgreSQL refuses it in a string), very long text, unicode, impossible dates, `__in`
# lists with junk in them, numbers Python parses but a column does not.
GARBAGE = (
    "99999999999999999999999",
    "-99999999999999999999999",
    "abc \x00 ünïcødé ☃ 名前 " + "x" * 2000,
    "1,abc,99999999999999999999,,",
    "2026-13-45",
)
# Object ids in a path: every converter's worst (int converters match only digits).
BAD_IDS = ("99999999999999999999999", "abc", "%00", "ünïcødé" + "x" * 300)
# Parameters every list is sent besides its filters' own: Django's (ordering, page, search,
# error flag), primary key lookups, and lookups no list offers.
COMMON_PARAMS = ("id__in", "pk", "id__gt", "o", "p", "q", "e", "zzz", "id__regex")
# A page of ours may take longer; the whole sweep is kept under a minute per engine.
SLOW_REQUEST_SECONDS = 5.0


def registered_admins():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def changelist_params(model_admin, user) -> list[str]:
    """Every query string parameter the list reads: its filters' expected_parameters() (ours,
    unfold's ranges and dropdowns, Django's), its date hierarchy's, and COMMON_PARAMS."""
    request = RequestFactory().get("/")
    request.user = user
    changelist = model_admin.get_changelist_instance(request)
    params = []
    for spec in changelist.filter_specs:
        params += spec.expected_parameters()
    if model_admin.date_hierarchy:
        params += [f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day")]
    params += COMMON_PARAMS
    return list(dict.fromkeys(params))


_CONVERTER = re.compile(r"<(?:(?P<kind>\w+):)?(?P<name>\w+)>")


def extra_paths(model_admin) -> list[str]:
    """The admin's own pages (get_urls beyond add/change/delete/history), each path parameter
    replaced by a bad id the converter accepts; GET only (POST views answer 405)."""
    base = f"/admin/{model_admin.model._meta.app_label}/{model_admin.model._meta.model_name}/"
    paths = []
    for pattern in model_admin.get_urls():
        if not isinstance(pattern, URLPattern):
            continue
        route = str(pattern.pattern)
        converters = _CONVERTER.findall(route)
        standard = (pattern.name or "").endswith(("_change", "_delete", "_history"))
        if not converters or standard:
            continue  # the standard pages are swept by object_paths()
        for bad in BAD_IDS:
            if any(kind == "int" for kind, _ in converters) and not bad.isdigit():
                continue
            replacement = quote(bad, safe="%")
            paths.append(base + _CONVERTER.sub(lambda _, r=replacement: r, route))
    return paths


def object_paths(model_admin) -> list[str]:
    base = f"/admin/{model_admin.model._meta.app_label}/{model_admin.model._meta.model_name}/"
    return [f"{base}{bad}/{page}" for bad in BAD_IDS for page in ("change/", "history/")]


def assert_never_5xx(client, path, params=None, followed_before=None) -> None:
    """GET path (and the redirect it answers with, once): never a server error. A redirect
    target already seen (the list without the dropped parameter) is not fetched again."""
    started = time.monotonic()
    response = client.get(path, params or {})
    assert response.status_code < 500, (path, params, response.status_code)
    if response.status_code in (301, 302) and response["Location"].startswith(("/", "?")):
        location = response["Location"]
        if location.startswith("?"):
            location = path + location
        if followed_before is not None:
            if location in followed_before:
                return
            followed_before.add(location)
        followed = client.get(location)
        assert followed.status_code < 500, (path, params, location, followed.status_code)
    elapsed = time.monotonic() - started
    assert elapsed < SLOW_REQUEST_SECONDS, (path, params, elapsed)


def sweep_changelist(client, model_admin, user) -> int:
    """Every parameter of the list with every garbage value, one at a time; the number of
    requests made."""
    url = f"/admin/{model_admin.model._meta.app_label}/{model_admin.model._meta.model_name}/"
    count, seen = 0, set()
    for param in changelist_params(model_admin, user):
        for value in GARBAGE:
            assert_never_5xx(client, url, {param: value}, seen)
            count += 1
    return count


def sweep_object_pages(client, model_admin) -> int:
    paths = object_paths(model_admin) + extra_paths(model_admin)
    for path in paths:
        assert_never_5xx(client, path)
    return len(paths)
