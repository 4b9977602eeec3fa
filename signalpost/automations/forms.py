"""The staff form of an automation: its settings, and its steps as rows.

Each step is a row of fields (the kind, then the settings of every kind; a script
shows only the chosen kind's). The rows turn into the same ``steps`` JSON the API
takes (``steps_from_rows``), so the staff pages and the API store exactly the same
thing through the same services; the services' one validation
(``automations.validation``) judges it, and its errors are put back on the field or
the row they name (``service_errors_show``). The form's own fields check nothing of
their own beyond their shape: an unknown kind or trigger reaches the validation as
typed, and is refused there, in its words.
"""

import re
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from signalpost.automations.models import Automation, Step
from signalpost.newsletters.attributes import attribute_value_parse
from signalpost.newsletters.models import Newsletter, Subscription

# Blank rows offered below the steps, to add that many at a time.
BLANK_ROWS = 3
# The most rows a form may post (more than the validation's STEPS_MAX, so that too
# many steps are refused there, in its words, with everything typed kept).
ROWS_MAX = 60
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# The wait's duration fields, in seconds each.
DURATION_UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
# The date trigger's offset, typed in whole days and hours.
OFFSET_UNITS = DURATION_UNITS[:2]
BRANCH_CONDITIONS = [("clicked", "clicked a link of email step"), ("has_tag", "has the tag")]
_STEP_MESSAGE = re.compile(r"^Step (\d+): ")
# The services' names of settings the form types in other fields.
_FORM_FIELD = {"trigger_offset_seconds": "offset_days"}
_FORM_MESSAGE = {"The offset is whole seconds.": "Days and hours are whole numbers."}


class _SelectAny(forms.Select):
    """A select that also offers the value it was given when that is not a choice, so
    what was typed (an unknown kind, through a crafted form) is shown back as it was."""

    def optgroups(self, name: str, value: list[str], attrs: Any = None) -> Any:
        known = {str(choice) for choice, _ in self.choices}
        self.choices = [*self.choices, *((v, v) for v in value if v and v not in known)]
        return super().optgroups(name, value, attrs)


class _AnyChoice(forms.CharField):
    """Text offered as a list of choices; a value not in it is passed on as typed, for
    the validation to refuse in its words."""

    def __init__(self, *, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(widget=_SelectAny(choices=choices), **kwargs)


class _AnyChoices(forms.MultipleChoiceField):
    """Checkboxes whose values are checked by the validation, not here."""

    def valid_value(self, value: str) -> bool:
        return True


def _text(label: str, **attrs: Any) -> forms.CharField:
    return forms.CharField(
        label=label, required=False, strip=False, widget=forms.TextInput(attrs=attrs)
    )


def _number(label: str) -> forms.CharField:
    return _text(label, inputmode="numeric", size=5)


class AutomationForm(forms.Form):
    """An automation's settings; ``newsletter`` only when it is created."""

    name = forms.CharField(label="Name", required=False, strip=False)
    newsletter = forms.ModelChoiceField(
        label="Newsletter", queryset=Newsletter.objects.all(), required=True
    )
    trigger = _AnyChoice(
        label="Starts when", choices=[("", "—"), *Automation.Trigger.choices], required=False
    )
    trigger_value = forms.CharField(
        label="Tag or attribute",
        required=False,
        strip=False,
        help_text="The tag that starts it, the attribute whose change does, or the date "
        "attribute (e.g. trial_end) whose moment does; empty when it starts on subscribing.",
    )
    offset_days = _number("Date trigger: days from the date")
    offset_hours = _number("and hours")
    offset_when = _AnyChoice(
        label="Before or after the date",
        choices=[("before", "before"), ("after", "after")],
        help_text="For a date attribute: when, around the date, people enroll "
        "(e.g. 3 days before trial_end); empty: at the date itself.",
    )
    trigger_sources = _AnyChoices(
        label="Only subscriptions from",
        required=False,
        choices=Subscription.Source.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: subscriptions from anywhere start it.",
    )
    exit_tag = forms.CharField(
        label="Exit tag",
        required=False,
        strip=False,
        help_text="Putting this tag on someone ends their way through (optional).",
    )

    def __init__(self, *args: Any, creating: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if creating:
            self.fields["trigger"].initial = Automation.Trigger.SUBSCRIBED
        else:
            del self.fields["newsletter"]

    def settings(self) -> dict[str, Any]:
        """The settings as the services take them."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "trigger": data["trigger"],
            "trigger_value": data["trigger_value"],
            "trigger_sources": data["trigger_sources"],
            "trigger_offset_seconds": _offset_seconds(data),
            "exit_tag": data["exit_tag"],
        }

    @classmethod
    def as_typed(cls, data: Any, *, creating: bool) -> "AutomationForm":
        """The settings posted in ``data``, shown again as typed, unchecked."""
        posted = cls(data, creating=creating)
        return cls(initial={name: posted[name].data for name in posted.fields}, creating=creating)

    @staticmethod
    def initial_of(automation: Automation) -> dict[str, Any]:
        return {
            "name": automation.name,
            "trigger": automation.trigger,
            "trigger_value": automation.trigger_value,
            "trigger_sources": automation.trigger_sources,
            **_offset_initial(automation.trigger_offset_seconds),
            "exit_tag": automation.exit_tag,
        }


class StepForm(forms.Form):
    """One step: its kind and, grouped by kind, every kind's settings."""

    kind = _AnyChoice(label="Kind", choices=[("", "— (no step)"), *Step.Kind.choices])
    wait_days = _number("Days")
    wait_hours = _number("Hours")
    wait_minutes = _number("Minutes")
    wait_seconds = _number("Seconds")
    wait_weekday = _AnyChoice(
        label="or until the next",
        choices=[("", "—"), *((str(n), day) for n, day in enumerate(WEEKDAYS))],
    )
    wait_time = _text("at (HH:MM)", placeholder="09:00", size=6)
    subject = _text("Subject", size=60)
    preview_text = _text("Preview text", size=60)
    body_markdown = forms.CharField(
        label="Body (Markdown)",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60}),
    )
    tag = _text("Tag")
    attribute_key = _text("Attribute")
    attribute_value = _text("Value")
    webhook_event = _text("Event name")
    branch_if = _AnyChoice(label="If the person", choices=[("", "—"), *BRANCH_CONDITIONS])
    branch_value = _text("Step or tag", size=12)
    branch_goto = _number("go to step")

    # The fields of each kind, in groups: (title, the kinds it serves, the fields). The
    # template shows them all; the script only the chosen kind's.
    GROUPS = (
        ("Wait for", "wait", ("wait_days", "wait_hours", "wait_minutes", "wait_seconds")),
        ("or wait until", "wait", ("wait_weekday", "wait_time")),
        ("Email", "email", ("subject", "preview_text", "body_markdown")),
        ("Tag", "tag_add tag_remove", ("tag",)),
        ("Attribute", "set_attribute", ("attribute_key", "attribute_value")),
        ("Webhook", "webhook", ("webhook_event",)),
        ("Branch", "branch", ("branch_if", "branch_value", "branch_goto")),
    )

    def groups(self) -> list[dict[str, Any]]:
        return [
            {"title": title, "kinds": kinds, "fields": [self[name] for name in names]}
            for title, kinds, names in self.GROUPS
        ]

    def is_blank(self) -> bool:
        """Nothing typed into the row: it is no step."""
        data = self.cleaned_data
        return not any(data.get(name) for name in self.fields if name not in ("ORDER", "DELETE"))

    def step(self) -> dict[str, Any]:
        """The step as the API takes it (``{"kind", "config"}``), not yet checked."""
        data = self.cleaned_data
        kind = data["kind"]
        return {"kind": kind, "config": _config_of(kind, data)}

    @staticmethod
    def initial_of(step: dict[str, Any]) -> dict[str, Any]:
        """The row's fields for a stored step."""
        kind, config = step["kind"], step["config"]
        initial: dict[str, Any] = {"kind": kind}
        if kind == Step.Kind.WAIT and "seconds" in config:
            initial.update(_duration_shown(config["seconds"], prefix="wait", units=DURATION_UNITS))
        elif kind == Step.Kind.WAIT:
            initial.update(wait_weekday=str(config["weekday"]), wait_time=config["time"])
        elif kind == Step.Kind.EMAIL:
            initial.update(
                subject=config["subject"],
                preview_text=config.get("preview_text", ""),
                body_markdown=config["body_markdown"],
            )
        elif kind in (Step.Kind.TAG_ADD, Step.Kind.TAG_REMOVE):
            initial["tag"] = config["tag"]
        elif kind == Step.Kind.SET_ATTRIBUTE:
            initial.update(attribute_key=config["key"], attribute_value=str(config["value"]))
        elif kind == Step.Kind.WEBHOOK:
            initial["webhook_event"] = config.get("event", "")
        elif kind == Step.Kind.BRANCH:
            ((condition, value),) = config["if"].items()
            initial.update(
                branch_if=condition, branch_value=str(value), branch_goto=str(config["goto"])
            )
        return initial


def _whole(text: str) -> int | str:
    """A whole number typed in, or the text itself for the validation to refuse."""
    stripped = text.strip()
    if re.fullmatch(r"-?\d{1,12}", stripped):
        return int(stripped)
    return text


def _duration_typed(data: dict[str, Any], *, prefix: str, units: tuple) -> int | str | None:
    """The duration typed into the fields ``<prefix>_<unit>``, in seconds; None when
    nothing is typed; the wrong text itself, for the validation to refuse."""
    typed = {unit: data[f"{prefix}_{unit}"] for unit, _ in units if data[f"{prefix}_{unit}"]}
    if not typed:
        return None
    amounts = {unit: _whole(text) for unit, text in typed.items()}
    wrong = [text for text in amounts.values() if isinstance(text, str)]
    if wrong:
        return wrong[0]
    whole = cast(dict[str, int], amounts)
    return sum(whole.get(unit, 0) * size for unit, size in units)


def _duration_shown(seconds: int, *, prefix: str, units: tuple) -> dict[str, str]:
    """The fields ``<prefix>_<unit>`` showing ``seconds`` (the largest units first; what
    the smallest unit cannot show is left out)."""
    shown, left = {}, seconds
    for unit, size in units:
        amount, left = divmod(left, size)
        shown[f"{prefix}_{unit}"] = str(amount) if amount else ""
    return shown


def _offset_seconds(data: dict[str, Any]) -> int | str:
    """The date trigger's offset typed as days and hours before or after the date, in
    seconds (0 when none is typed), or the wrong text for the validation to refuse."""
    seconds = _duration_typed(data, prefix="offset", units=OFFSET_UNITS) or 0
    if isinstance(seconds, str):
        return seconds
    return -seconds if data["offset_when"] != "after" else seconds


def _offset_initial(seconds: int) -> dict[str, str]:
    return {
        **_duration_shown(abs(seconds), prefix="offset", units=OFFSET_UNITS),
        "offset_when": "after" if seconds > 0 else "before",
    }


def _wait_config(data: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    seconds = _duration_typed(data, prefix="wait", units=DURATION_UNITS)
    if seconds is not None:
        config["seconds"] = seconds
    if data["wait_weekday"] or data["wait_time"]:
        config["weekday"] = _whole(data["wait_weekday"])
        config["time"] = data["wait_time"].strip()
    return config


def _config_of(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    if kind == Step.Kind.WAIT:
        return _wait_config(data)
    if kind == Step.Kind.EMAIL:
        return {
            "subject": data["subject"],
            "preview_text": data["preview_text"],
            "body_markdown": data["body_markdown"],
        }
    if kind in (Step.Kind.TAG_ADD, Step.Kind.TAG_REMOVE):
        return {"tag": data["tag"]}
    if kind == Step.Kind.SET_ATTRIBUTE:
        return {
            "key": data["attribute_key"],
            "value": attribute_value_parse(data["attribute_value"]),
        }
    if kind == Step.Kind.WEBHOOK:
        return {"event": data["webhook_event"]}
    if kind == Step.Kind.BRANCH:
        value = data["branch_value"]
        condition = data["branch_if"]
        return {
            "if": {condition: _whole(value) if condition == "clicked" else value},
            "goto": _whole(data["branch_goto"]),
        }
    return {}


class StepRows(forms.BaseFormSet):
    """The step rows of the form (``step_forms`` makes them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The validation's refusals of the steps as a whole (too many, none at all...).
        self.refusals: list[str] = []

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        form.fields["ORDER"].label = "Position"
        if index is not None:
            form.fields["ORDER"].initial = index  # a new row goes where it is shown
        form.fields["ORDER"].widget.attrs.update(size=3)
        form.fields["DELETE"].label = "Delete this step"
        form.fields["DELETE"].label_suffix = ""

    def kept_forms(self) -> list[StepForm]:
        """The rows that are steps, in their new order (a row's position, then its place
        on the page): deleted and blank rows left out."""
        forms_kept = [
            form
            for form in self.forms
            if form.is_valid() and not form.cleaned_data.get("DELETE") and not form.is_blank()
        ]
        return sorted(
            forms_kept,
            key=lambda form: (
                form.cleaned_data.get("ORDER") is None,
                form.cleaned_data.get("ORDER") or 0,
                self.forms.index(form),
            ),
        )

    def steps(self) -> list[dict[str, Any]]:
        return [form.step() for form in self.kept_forms()]


StepFormSet = forms.formset_factory(
    StepForm,
    formset=StepRows,
    extra=BLANK_ROWS,
    can_order=True,
    can_delete=True,
    max_num=ROWS_MAX,
    absolute_max=ROWS_MAX,
)


def step_forms(*, data: Any = None, steps: list[dict[str, Any]] | None = None) -> StepRows:
    """The steps' rows: bound to ``data`` (a POST), or showing ``steps`` (as stored)."""
    if data is not None:
        return cast(StepRows, StepFormSet(data, prefix="steps"))
    initial = [
        {**StepForm.initial_of(step), "ORDER": position}
        for position, step in enumerate(steps or [])
    ]
    return cast(StepRows, StepFormSet(initial=initial, prefix="steps"))


def step_forms_more(data: Any) -> StepRows:
    """The rows posted in ``data``, shown again as typed (not checked: nothing is being
    saved), with ``BLANK_ROWS`` more empty ones below: adding rows without a script."""
    posted = cast(StepRows, StepFormSet(data, prefix="steps"))
    typed = [{name: form[name].data for name in form.fields} for form in posted.forms]
    return cast(StepRows, StepFormSet(initial=typed[: ROWS_MAX - BLANK_ROWS], prefix="steps"))


def service_errors_show(error: ValidationError, *, form: AutomationForm, rows: StepRows) -> None:
    """Put a service's refusal where it belongs: a setting's on its field, a step's
    (``Step N: ...``, N its position once saved) on that step's row, the rest above
    the steps."""
    kept = rows.kept_forms()
    for field, messages in error.message_dict.items():
        for message in messages:
            if field == "steps":
                _step_error_show(message, kept=kept, rows=rows)
            elif _FORM_FIELD.get(field, field) in form.fields:
                form.add_error(_FORM_FIELD.get(field, field), _FORM_MESSAGE.get(message, message))
            else:
                form.add_error(None, message)


def _step_error_show(message: str, *, kept: list[StepForm], rows: StepRows) -> None:
    match = _STEP_MESSAGE.match(message)
    if match and int(match.group(1)) < len(kept):
        # The message keeps its "Step N:": an unsaved row's title gives no number.
        kept[int(match.group(1))].add_error(None, message)
        return
    rows.refusals.append(message)
