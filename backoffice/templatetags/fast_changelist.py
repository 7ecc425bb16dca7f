"""`{% fast_result_list cl %}`: Unfold's results table with rows from backoffice.admin_rows."""

from django import VERSION as DJANGO_VERSION
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.template import Library
from unfold.templatetags import unfold_list

from backoffice.admin_rows import fast_rows

register = Library()


def fast_result_list(context, cl):
    rows = fast_rows(cl)
    if rows is None:
        return {**unfold_list.result_list(context, cl), "fast": False}
    headers = list(unfold_list.result_headers(cl))
    return {
        "cl": cl,
        "result_hidden_fields": list(unfold_list.result_hidden_fields(cl)),
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "results": rows,
        "fast": True,
        "actions_row": context.get("actions_row"),
        "has_add_permission": cl.model_admin.has_add_permission(context["request"]),
    }


@register.tag(name="fast_result_list")
def fast_result_list_tag(parser, token):
    if DJANGO_VERSION >= (6, 1):
        return InclusionAdminNode(
            "fast_result_list",
            parser,
            token,
            func=fast_result_list,
            template_name="fast_change_list_results.html",
        )
    return InclusionAdminNode(
        parser, token, func=fast_result_list, template_name="fast_change_list_results.html"
    )
