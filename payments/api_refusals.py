"""How a service's refusal becomes an API answer: the service's own message, and a status that
says what kind of "no" it is. The services raise one exception class per area with a message
constant; the API maps each message constant to a kind:

- INVALID (400): the input is wrong (a missing note, a bad amount); fixing the body helps;
- FORBIDDEN (403, code `permission_denied`): the user lacks a permission (the senior
  permission above a limit included);
- RULE (403, code `refused_by_rule`): a rule about who may act refuses this user (four-eyes:
  not your own request);
- CONFLICT (409): the object's state does not allow it now (already decided, in flight,
  disputed); another request or time changed it, and repeating the same call will not help.

Templates are matched whole, their `{placeholders}` as any text, so a formatted message
("Only pending requests ...; this one is approved.") is recognised by its constant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from backoffice.api.errors import ApiError

INVALID = "invalid"
FORBIDDEN = "forbidden"
RULE = "rule"
CONFLICT = "conflict"

STATUS = {INVALID: 400, FORBIDDEN: 403, RULE: 403, CONFLICT: 409}
CODES = {
    INVALID: "invalid",
    FORBIDDEN: "permission_denied",
    RULE: "refused_by_rule",
    CONFLICT: "conflict",
}


@lru_cache(maxsize=256)
def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"\{[^{}]*\}", template)
    return re.compile("^" + "(?:.|\n)*?".join(re.escape(part) for part in parts) + "$")


def message_matches(template: str, message: str) -> bool:
    """`message` is `template` formatted (placeholders match any text)."""
    return bool(_pattern(template).match(message))


def refusal_kind(message: str, kinds: Iterable[tuple[str, str]], *, default: str) -> str:
    """The kind of the first (template, kind) pair `message` matches, else `default`."""
    for template, kind in kinds:
        if message_matches(template, message):
            return kind
    return default


def refusal_error(
    message: str,
    kinds: Iterable[tuple[str, str]],
    *,
    default: str,
    field: str | None = None,
) -> ApiError:
    """The ApiError for a service refusal. `field`: the body field an INVALID answer is
    about, given back under `fields` so a client can show it beside the input."""
    kind = refusal_kind(message, kinds, default=default)
    fields = {field: [message]} if kind == INVALID and field else None
    return ApiError(CODES[kind], message, STATUS[kind], fields=fields)
