"""What an automation's trigger and steps may be: every write checks here first."""

import re
from typing import Any

from django.core.exceptions import ValidationError

from signalpost.accounts.services import (
    CONTROL_CHARACTERS,
    profile_attributes_check,
    tag_name_clean,
)
from signalpost.automations.models import STEPS_MAX, Automation, Step
from signalpost.newsletters.models import Newsletter, Subscription
from signalpost.publishing.models import Issue
from signalpost.publishing.selectors import issue_preview_message
from signalpost.publishing.services import issue_render, issue_validate

NAME_MAX_LENGTH = 200
# A wait of at most a year: longer is a typo, and keeps the arithmetic in range.
WAIT_SECONDS_MAX = 366 * 24 * 3600
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_STEP_KEYS = {
    Step.Kind.WAIT: ({"seconds", "weekday", "time"}, set()),
    Step.Kind.EMAIL: ({"subject", "body_markdown", "preview_text"}, {"subject", "body_markdown"}),
    Step.Kind.TAG_ADD: ({"tag"}, {"tag"}),
    Step.Kind.TAG_REMOVE: ({"tag"}, {"tag"}),
    Step.Kind.SET_ATTRIBUTE: ({"key", "value"}, {"key", "value"}),
    Step.Kind.WEBHOOK: ({"event"}, set()),
    Step.Kind.BRANCH: ({"if", "goto"}, {"if", "goto"}),
    Step.Kind.WELCOME: (set(), set()),
}
# Steps that email the person.
SENDING = {Step.Kind.EMAIL, Step.Kind.WELCOME}
WEBHOOK_EVENT_MAX_LENGTH = 100


def name_clean(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError({"name": "An automation needs a name."})
    if CONTROL_CHARACTERS.search(raw):
        raise ValidationError({"name": "A name cannot contain control characters."})
    name = " ".join(raw.split())
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": f"A name has at most {NAME_MAX_LENGTH} characters."})
    return name


def trigger_clean(*, trigger: object, value: object, sources: object) -> tuple[str, str, list[str]]:
    """Return the stored ``(trigger, trigger_value, trigger_sources)`` or raise."""
    if not isinstance(trigger, str) or trigger not in Automation.Trigger.values:
        choices = ", ".join(Automation.Trigger.values)
        raise ValidationError({"trigger": f"A trigger is one of {choices}."})
    value = "" if value is None else value
    if not isinstance(value, str):
        raise ValidationError({"trigger_value": "The trigger's value is text."})
    if trigger == Automation.Trigger.TAGGED:
        value = tag_name_clean(value) if value.strip() else ""
        if not value:
            raise ValidationError({"trigger_value": "Name the tag that starts the automation."})
    elif trigger in (Automation.Trigger.ATTRIBUTE_CHANGED, Automation.Trigger.DATE_REACHED):
        if not value.strip():
            raise ValidationError({"trigger_value": "Name the attribute that starts it."})
        try:
            profile_attributes_check({value: None})
        except ValidationError as error:
            raise ValidationError({"trigger_value": error.messages}) from error
    elif value:
        raise ValidationError({"trigger_value": "A subscribe trigger takes no value."})
    sources = [] if sources is None else sources
    if not isinstance(sources, list) or any(
        source not in Subscription.Source.values for source in sources
    ):
        choices = ", ".join(Subscription.Source.values)
        raise ValidationError({"trigger_sources": f"Sources are a list of {choices}."})
    return str(trigger), value, sorted(set(sources))


def trigger_offset_clean(*, trigger: str, offset: object) -> int:
    """Return the stored ``trigger_offset_seconds``: whole seconds within a year either
    way of the date for ``date_reached`` (negative: before it), 0 for other triggers."""
    offset = 0 if offset is None else offset
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise ValidationError({"trigger_offset_seconds": "The offset is whole seconds."})
    if trigger != Automation.Trigger.DATE_REACHED:
        if offset:
            raise ValidationError(
                {"trigger_offset_seconds": "Only a date_reached trigger takes an offset."}
            )
        return 0
    if not -WAIT_SECONDS_MAX <= offset <= WAIT_SECONDS_MAX:
        raise ValidationError(
            {
                "trigger_offset_seconds": (
                    f"The offset is -{WAIT_SECONDS_MAX} to {WAIT_SECONDS_MAX} seconds (a year)."
                )
            }
        )
    return offset


def exit_tag_clean(raw: object) -> str:
    if raw is None or raw == "":
        return ""
    try:
        return tag_name_clean(raw)
    except ValidationError as error:
        raise ValidationError({"exit_tag": error.messages}) from error


def _step_error(position: int, message: str) -> ValidationError:
    return ValidationError({"steps": f"Step {position}: {message}"})


def steps_clean(*, newsletter: Newsletter, steps: object) -> list[dict[str, Any]]:
    """Return the steps as stored (``[{"kind", "config"}]``, positions 0, 1, ...).

    Refused: an unknown kind or key, a wait of zero, an email that cannot render
    or has no unsubscribe link, two emails with no wait between them (the same
    person would get both at once), a branch that jumps backwards (a loop) or
    past the end, a condition on a step that is not an earlier email.
    """
    if not isinstance(steps, list):
        raise ValidationError({"steps": "Steps are a list."})
    if len(steps) > STEPS_MAX:
        raise ValidationError({"steps": f"At most {STEPS_MAX} steps."})
    cleaned: list[dict[str, Any]] = []
    for position, raw in enumerate(steps):
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
            raise _step_error(position, "a step is an object with a kind.")
        kind = raw["kind"]
        if kind not in _STEP_KEYS:
            raise _step_error(position, f"the kind is one of {', '.join(_STEP_KEYS)}.")
        config = raw.get("config", {})
        if not isinstance(config, dict):
            raise _step_error(position, "config is an object.")
        allowed, required = _STEP_KEYS[Step.Kind(kind)]
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise _step_error(position, f"unknown setting {unknown[0]!r}.")
        missing = sorted(required - set(config))
        if missing:
            raise _step_error(position, f"{kind} needs {missing[0]!r}.")
        cleaned.append(
            {"kind": kind, "config": _config_clean(newsletter, position, kind, config, cleaned)}
        )
    _sends_apart_check(cleaned)
    for position, step in enumerate(cleaned):
        if step["kind"] == Step.Kind.BRANCH and step["config"]["goto"] > len(cleaned):
            raise _step_error(position, f"goto is at most {len(cleaned)} (the end).")
    return cleaned


def _config_clean(
    newsletter: Newsletter,
    position: int,
    kind: str,
    config: dict[str, Any],
    before: list[dict[str, Any]],
) -> dict[str, Any]:
    if kind == Step.Kind.WAIT:
        return _wait_clean(position, config)
    if kind == Step.Kind.EMAIL:
        return _email_clean(newsletter, position, config)
    if kind in (Step.Kind.TAG_ADD, Step.Kind.TAG_REMOVE):
        try:
            return {"tag": tag_name_clean(config["tag"])}
        except ValidationError as error:
            raise _step_error(position, error.messages[0]) from error
    if kind == Step.Kind.SET_ATTRIBUTE:
        try:
            profile_attributes_check({config["key"]: config["value"]})
        except ValidationError as error:
            raise _step_error(position, error.messages[0]) from error
        return {"key": config["key"], "value": config["value"]}
    if kind == Step.Kind.WELCOME:
        return {}
    if kind == Step.Kind.WEBHOOK:
        event = config.get("event", "")
        if (
            not isinstance(event, str)
            or len(event) > WEBHOOK_EVENT_MAX_LENGTH
            or CONTROL_CHARACTERS.search(event)
        ):
            raise _step_error(
                position,
                f"event is text of at most {WEBHOOK_EVENT_MAX_LENGTH}, without control characters.",
            )
        return {"event": event}
    return _branch_clean(position, config, before)


def _wait_clean(position: int, config: dict[str, Any]) -> dict[str, Any]:
    if "seconds" in config:
        seconds = config["seconds"]
        if set(config) != {"seconds"}:
            raise _step_error(position, "a wait is either seconds or a weekday and time.")
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise _step_error(position, "seconds is a whole number.")
        if not 0 < seconds <= WAIT_SECONDS_MAX:
            raise _step_error(position, f"a wait is 1 to {WAIT_SECONDS_MAX} seconds.")
        return {"seconds": seconds}
    weekday, time = config.get("weekday"), config.get("time")
    if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
        raise _step_error(position, "a wait needs seconds, or a weekday (0 Monday to 6 Sunday).")
    if not isinstance(time, str) or not _TIME.match(time):
        raise _step_error(position, "time is HH:MM (24 hours).")
    return {"weekday": weekday, "time": time}


def _email_clean(newsletter: Newsletter, position: int, config: dict[str, Any]) -> dict[str, Any]:
    subject, body = config["subject"], config["body_markdown"]
    preview_text = config.get("preview_text", "")
    if not all(isinstance(value, str) for value in (subject, body, preview_text)):
        raise _step_error(position, "subject, body_markdown and preview_text are text.")
    if not body.strip():
        raise _step_error(position, "an email needs a body.")
    try:
        issue_validate(subject=subject, body_markdown=body, preview_text=preview_text)
        body_html = issue_render(body_markdown=body)
    except ValidationError as error:
        raise _step_error(position, error.messages[0]) from error
    sample = Issue(newsletter=newsletter, subject=subject, slug="preview", preview_text="")
    try:
        message = issue_preview_message(
            issue=sample, subject=subject, body_html=body_html, preview_text=preview_text
        )
    except Exception as error:  # A template error of the newsletter's own templates.
        raise _step_error(position, f"the email cannot be built: {error}") from error
    if "/unsubscribe/" not in message.text or "/unsubscribe/" not in (message.html or ""):
        raise _step_error(
            position, "the email has no unsubscribe link (the newsletter's template lost it)."
        )
    return {"subject": subject, "body_markdown": body, "preview_text": preview_text}


def _branch_clean(position: int, config: dict[str, Any], before: list[dict[str, Any]]) -> dict:
    goto, condition = config["goto"], config["if"]
    if isinstance(goto, bool) or not isinstance(goto, int):
        raise _step_error(position, "goto is a step's position.")
    if goto <= position:
        raise _step_error(position, "a branch only jumps forward (a jump back would loop).")
    if not isinstance(condition, dict) or len(condition) != 1:
        raise _step_error(position, 'if is {"clicked": position} or {"has_tag": tag}.')
    ((name, value),) = condition.items()
    if name == "clicked":
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 0 <= value < position
            or before[value]["kind"] != Step.Kind.EMAIL
        ):
            raise _step_error(position, "clicked names an earlier email step's position.")
        return {"if": {"clicked": value}, "goto": goto}
    if name == "has_tag":
        try:
            return {"if": {"has_tag": tag_name_clean(value)}, "goto": goto}
        except ValidationError as error:
            raise _step_error(position, error.messages[0]) from error
    raise _step_error(position, 'if is {"clicked": position} or {"has_tag": tag}.')


def _sends_apart_check(steps: list[dict[str, Any]]) -> None:
    """Two emails with no wait between them reach the same person at once: refused.

    Along every path: a branch that jumps over a wait counts. Jumps only go
    forward, so one pass in order sees every way into a step first.
    """
    # position -> the email step someone may arrive from without a wait since, if any.
    arriving: dict[int, int | None] = {}
    for position, step in enumerate(steps):
        last_email = arriving.get(position)
        if step["kind"] in SENDING and last_email is not None:
            raise _step_error(
                position, f"a wait must come between this email and step {last_email}'s."
            )
        if step["kind"] == Step.Kind.WAIT:
            after = None
        elif step["kind"] in SENDING:
            after = position
        else:
            after = last_email
        if step["kind"] == Step.Kind.BRANCH and after is not None:
            goto = step["config"]["goto"]
            arriving[goto] = arriving.get(goto) if arriving.get(goto) is not None else after
        if after is not None and arriving.get(position + 1) is None:
            arriving[position + 1] = after
