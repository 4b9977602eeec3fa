"""The staff pages for segments: a form of condition rows, with the live matching count.

The form turns its rows into the filter's JSON form (``segments``), so the staff
pages and the API store exactly the same thing through the same services.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.http import JsonResponse
from django.urls import path

from signalpost.newsletters.attributes import attribute_value_parse
from signalpost.newsletters.models import Newsletter, Segment, Subscription
from signalpost.newsletters.segments import segment_rules_check
from signalpost.newsletters.selectors import segment_count, segment_subscriptions
from signalpost.newsletters.services import segment_create, segment_delete, segment_update

ROWS = 6
TYPES = [
    ("", "—"),
    ("attribute", "Attribute"),
    ("tag", "Tag"),
    ("subscribed", "Subscribed"),
    ("source", "Source"),
    ("engagement", "Engagement"),
]
OPERATORS = [
    ("", "—"),
    ("equals", "equals"),
    ("contains", "contains"),
    ("greater", "is greater than"),
    ("less", "is less than"),
    ("exists", "is set"),
    ("has", "is on the profile"),
    ("has_not", "is not on the profile"),
    ("before", "before"),
    ("after", "after"),
    ("clicked", "clicked any of the last (value) issues"),
    ("opened", "opened any of the last (value) issues"),
    ("not_clicked", "clicked none of the last (value) issues"),
    ("not_opened", "opened none of the last (value) issues"),
]
ROW_FIELDS = ("type", "key", "op", "value")


def _row_fields(number: int) -> dict[str, forms.Field]:
    label = f"Condition {number}"
    return {
        f"c{number}_type": forms.ChoiceField(label=f"{label}: what", choices=TYPES, required=False),
        f"c{number}_key": forms.CharField(
            label=f"{label}: attribute key", max_length=100, required=False
        ),
        f"c{number}_op": forms.ChoiceField(
            label=f"{label}: test", choices=OPERATORS, required=False
        ),
        f"c{number}_value": forms.CharField(
            label=f"{label}: value", max_length=1000, required=False
        ),
    }


def _row_value(kind: str, value: str) -> Any:
    if kind == "attribute":
        return attribute_value_parse(value)
    if kind == "engagement" and value.strip().isdecimal() and len(value.strip()) < 10:
        return int(value)  # how many issues; anything else is refused as it is
    return value


def rules_from_rows(data: dict[str, Any]) -> dict[str, Any]:
    """The filter the form's rows describe (empty rows left out), not yet checked."""
    conditions = []
    for number in range(1, ROWS + 1):
        kind, key, op, value = (data.get(f"c{number}_{name}") or "" for name in ROW_FIELDS)
        if not kind:
            continue
        condition: dict[str, Any] = {"type": kind, "op": op}
        if kind == "attribute":
            condition["key"] = key
        if op not in ("exists", "") and value.strip():
            condition["value"] = _row_value(kind, value)
        conditions.append(condition)
    return {"match": data.get("match") or "all", "conditions": conditions}


def rows_from_rules(rules: dict[str, Any]) -> dict[str, Any]:
    """The form's initial rows for a stored filter."""
    initial: dict[str, Any] = {"match": rules.get("match", "all")}
    for number, condition in enumerate(rules.get("conditions", [])[:ROWS], start=1):
        for name in ROW_FIELDS:
            value = condition.get(name, "")
            initial[f"c{number}_{name}"] = value if isinstance(value, str) else str(value)
    return initial


class SegmentForm(forms.ModelForm):
    match = forms.ChoiceField(
        label="People who match",
        choices=[("all", "all of the conditions"), ("any", "any of the conditions")],
        widget=forms.RadioSelect,
        initial="all",
    )

    class Meta:
        model = Segment
        fields = ["newsletter", "name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial.update(rows_from_rules(self.instance.rules))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        try:
            cleaned["rules"] = segment_rules_check(
                rules_from_rows(cleaned), newsletter=cleaned.get("newsletter")
            )
        except ValidationError as error:
            self.add_error(None, error.message_dict["rules"])
        return cleaned


# The condition rows are declared fields (the admin builds its form from the declared ones).
for _number in range(1, ROWS + 1):
    SegmentForm.declared_fields.update(_row_fields(_number))
    SegmentForm.base_fields.update(_row_fields(_number))


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """Segments: build the filter row by row and see how many it matches as you go."""

    form = SegmentForm
    list_display = ["name", "newsletter", "matching_now"]
    list_filter = ["newsletter"]
    search_fields = ["name"]
    readonly_fields = ["matching_now"]
    change_form_template = "admin/newsletters/segment/change_form.html"

    def get_fieldsets(self, request, obj=None):
        rows = [
            (f"Condition {n}", {"fields": [tuple(f"c{n}_{name}" for name in ROW_FIELDS)]})
            for n in range(1, ROWS + 1)
        ]
        return [(None, {"fields": ["newsletter", "name", "match", "matching_now"]}), *rows]

    @admin.display(description="Matching now")
    def matching_now(self, segment: Segment) -> str:
        if not segment.pk:
            return "Counted once saved (and live at the top as you change it)."
        return f"{segment_count(segment=segment):,} active subscribers"

    def get_urls(self):
        count = self.admin_site.admin_view(self.count_view)
        return [path("count/", count, name="newsletters_segment_count"), *super().get_urls()]

    def count_view(self, request):
        """How many the filter in the query string matches now: ``{"count": n}``, or
        ``{"errors": [...]}`` (400) for a filter that cannot be counted."""
        if not self.has_view_or_change_permission(request):
            return JsonResponse({"errors": ["You may not see segments."]}, status=403)
        newsletter_id = request.GET.get("newsletter", "")
        newsletter = (
            Newsletter.objects.filter(pk=int(newsletter_id)).first()
            if newsletter_id.isdigit() and len(newsletter_id) < 19
            else None
        )
        if newsletter is None:
            return JsonResponse({"errors": ["Choose a newsletter."]}, status=400)
        try:
            rules = segment_rules_check(rules_from_rows(request.GET.dict()), newsletter=newsletter)
        except ValidationError as error:
            return JsonResponse({"errors": error.message_dict["rules"]}, status=400)
        matched = segment_subscriptions(newsletter_id=newsletter.pk, rules=rules).count()
        everyone = Subscription.objects.filter(
            newsletter=newsletter, status=Subscription.Status.ACTIVE
        ).count()
        return JsonResponse({"count": matched, "of": everyone})

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = segment_update(segment=obj, name=data["name"], rules=data["rules"])
        else:
            saved = segment_create(
                newsletter=data["newsletter"], name=data["name"], rules=data["rules"]
            )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        try:
            segment_delete(segment=obj)
        except ProtectedError as error:
            raise ValidationError("Issues were sent (or are to be sent) to it.") from error
