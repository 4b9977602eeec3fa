from datetime import datetime
from typing import Literal

from ninja import Field, Schema

from signalpost.automations.validation import WAIT_SECONDS_MAX
from signalpost.publishing.models import PREVIEW_TEXT_MAX_LENGTH
from signalpost.publishing.services import BODY_MAX_LENGTH, SUBJECT_MAX_LENGTH

PREVIEW_TEXT_DESCRIPTION = (
    "What inboxes show after the subject (the email's hidden preheader): one line. "
    "Empty: the body's first sentence."
)


class FieldError(Schema):
    field: str | None = Field(description="The input field at fault, if one is.")
    message: str


class ErrorOut(Schema):
    errors: list[FieldError]


class AcceptedOut(Schema):
    status: Literal["accepted"]
    detail: str


class NewsletterOut(Schema):
    slug: str
    name: str
    description: str
    topics: list[str]
    opt_in: Literal["double", "single"]
    is_public: bool
    # Empty: the site's default language (docs/languages.md).
    language: str
    active_subscribers: int


class SubscriptionIn(Schema):
    email: str = Field(max_length=254)
    newsletter: str = Field(max_length=60)
    name: str = Field("", max_length=200)


class UnsubscribeIn(Schema):
    email: str = Field(max_length=254)
    newsletter: str = Field(max_length=60)


class PersonIn(Schema):
    """Names a person by their address, in the body rather than the URL."""

    email: str = Field(max_length=254)


class ProfileSubscriptionOut(Schema):
    newsletter: str
    status: str
    source: str
    subscribed_at: datetime | None
    unsubscribed_at: datetime | None


class ProfileOut(Schema):
    email: str
    name: str
    attributes: dict
    tags: list[str]
    created_at: datetime
    subscriptions: list[ProfileSubscriptionOut]


class ProfileIn(Schema):
    name: str | None = Field(None, max_length=200)
    attributes: dict[str, str | int | float | bool | None] | None = Field(
        None, description="Replaces the attributes: at most 50 keys of at most 100 characters."
    )
    tags: list[str] | None = Field(
        None,
        description="Replaces the tags: at most 100 names of at most 50 characters, "
        "stored in lower case.",
    )


class ProfileUpdateIn(PersonIn, ProfileIn):
    pass


class ErasedOut(Schema):
    status: Literal["erased"]


class IssueIn(Schema):
    subject: str = Field(max_length=SUBJECT_MAX_LENGTH)
    body_markdown: str = Field(max_length=BODY_MAX_LENGTH)
    preview_text: str = Field(
        "", max_length=PREVIEW_TEXT_MAX_LENGTH, description=PREVIEW_TEXT_DESCRIPTION
    )


class IssueUpdateIn(Schema):
    """A draft's or scheduled issue's text; a field left out (or null) is kept."""

    subject: str | None = Field(None, max_length=SUBJECT_MAX_LENGTH)
    body_markdown: str | None = Field(None, max_length=BODY_MAX_LENGTH)
    preview_text: str | None = Field(
        None, max_length=PREVIEW_TEXT_MAX_LENGTH, description=PREVIEW_TEXT_DESCRIPTION
    )


class IssueOut(Schema):
    id: int
    newsletter: str
    segment: int | None = Field(None, description="The segment it goes to; null: everyone.")
    subject: str
    preview_text: str
    slug: str
    status: str
    scheduled_at: datetime | None
    sent_at: datetime | None
    recipient_count: int


class ProgressOut(Schema):
    status: str
    preparing: bool = Field(
        description="The deliveries are still being created: total counts them so far."
    )
    total: int
    sent: int
    failed: int
    skipped: int
    cancelled: int
    remaining: int
    held: int
    percent: float
    rate_per_second: float
    expected_finish: datetime | None


class IssueProgressOut(IssueOut):
    progress: ProgressOut


class EngagementCountsOut(Schema):
    total: int = Field(description="People's events (scanners and image proxies left out).")
    unique: int | None = Field(
        description="People with at least one; null for a newsletter that keeps counts only."
    )
    filtered: int = Field(description="Machine events left out of total.")


class LinkReportOut(Schema):
    position: int = Field(description="1 for the body's first link.")
    url: str
    clicks: int
    unique: int | None
    filtered: int


class IssueSummaryOut(Schema):
    id: int
    subject: str
    delivered: int
    unique_clicks: int
    unsubscribes: int


class IssueReportOut(Schema):
    issue: IssueOut
    delivered: int
    failed: int
    bounced: int
    complaints: int = Field(description="Recipients who complained within 7 days of the send.")
    unsubscribes: int = Field(
        description="Recipients who left within 7 days of the send, or before the next issue."
    )
    clicks: EngagementCountsOut
    opens: EngagementCountsOut | None = Field(
        description="Null unless the newsletter tracks opens."
    )
    links: list[LinkReportOut]
    clicks_by_hour: list[int] = Field(
        description="People's clicks in each of the 48 hours after the send started."
    )
    previous: list[IssueSummaryOut] = Field(description="The newsletter's 5 previous issues.")


class WebhookIn(Schema):
    url: str = Field(max_length=2000)
    events: list[str] = Field(default_factory=list, max_length=20)
    description: str = Field("", max_length=200)


class WebhookOut(Schema):
    id: int
    url: str
    events: list[str]
    description: str
    is_active: bool
    created_at: datetime


class WebhookSecretOut(WebhookOut):
    secret: str


class ImportReportOut(Schema):
    format: str
    rows: int
    imported: int
    duplicates: int
    rejected: int
    skipped: int
    suppressed: int
    rejections: list[dict]
    skips: list[dict]


SEGMENT_RULES_DESCRIPTION = (
    'The filter: {"match": "all"|"any", "conditions": [{"type": "attribute", "key": "plan", '
    '"op": "equals", "value": "pro"}, {"type": "tag", "op": "has", "value": "vip"}, ...]} '
    "(docs/audiences.md)."
)


class SegmentIn(Schema):
    newsletter: str = Field(max_length=60, description="The newsletter's slug.")
    name: str = Field(max_length=100)
    rules: dict = Field(description=SEGMENT_RULES_DESCRIPTION)


class SegmentUpdateIn(Schema):
    name: str = Field(max_length=100)
    rules: dict = Field(description=SEGMENT_RULES_DESCRIPTION)


class SegmentOut(Schema):
    id: int
    newsletter: str
    name: str
    rules: dict
    created_at: datetime
    updated_at: datetime


class SegmentCountOut(Schema):
    id: int
    count: int = Field(description="Active subscribers the segment matches now, exactly.")


class IssueSegmentIn(Schema):
    segment: int | None = Field(description="A segment of the issue's newsletter; null: everyone.")


STEPS_DESCRIPTION = (
    'The steps in order: [{"kind": "email", "config": {"subject": "Hi", "body_markdown": '
    '"..."}}, {"kind": "wait", "config": {"seconds": 86400}}, {"kind": "tag_add", "config": '
    '{"tag": "vip"}}, {"kind": "branch", "config": {"if": {"clicked": 0}, "goto": 4}}, ...] '
    "(docs/automations.md)."
)


OFFSET_MAX = WAIT_SECONDS_MAX
OFFSET_DESCRIPTION = (
    "For date_reached: seconds after the date in attribute trigger_value (negative: "
    "before it; -259200 is 3 days before). 0 for other triggers."
)


class AutomationIn(Schema):
    newsletter: str = Field(max_length=60, description="The newsletter's slug.")
    name: str = Field(max_length=200)
    trigger: str = Field(
        max_length=20, description="subscribed, tagged, attribute_changed or date_reached."
    )
    trigger_value: str = Field("", max_length=100, description="The tag or attribute key.")
    trigger_sources: list[str] = Field(
        [], max_length=10, description="For subscribed: only these sources (empty: all)."
    )
    # Strict: true is no number of seconds, nor is "-60".
    trigger_offset_seconds: int = Field(
        0, ge=-OFFSET_MAX, le=OFFSET_MAX, strict=True, description=OFFSET_DESCRIPTION
    )
    exit_tag: str = Field("", max_length=100)
    steps: list[dict] = Field([], max_length=50, description=STEPS_DESCRIPTION)


class AutomationUpdateIn(Schema):
    name: str | None = Field(None, max_length=200)
    trigger: str | None = Field(None, max_length=20)
    trigger_value: str | None = Field(None, max_length=100)
    trigger_sources: list[str] | None = Field(None, max_length=10)
    trigger_offset_seconds: int | None = Field(
        None, ge=-OFFSET_MAX, le=OFFSET_MAX, strict=True, description=OFFSET_DESCRIPTION
    )
    exit_tag: str | None = Field(None, max_length=100)
    steps: list[dict] | None = Field(None, max_length=50, description=STEPS_DESCRIPTION)


class AutomationStepOut(Schema):
    position: int
    kind: str
    config: dict


class AutomationOut(Schema):
    id: int
    newsletter: str
    name: str
    status: str
    trigger: str
    trigger_value: str
    trigger_sources: list[str]
    trigger_offset_seconds: int
    exit_tag: str
    steps: list[AutomationStepOut]
    created_at: datetime
    updated_at: datetime


class AutomationFunnelStepOut(Schema):
    position: int
    kind: str
    at_step: int = Field(description="People whose next step this is.")
    ran: int = Field(description="People for whom this step ran.")
    sent: int | None = Field(description="Emails sent (email steps).")
    clicked: int | None = Field(description="People who clicked a link of it (email steps).")


class AutomationCountsOut(Schema):
    id: int
    not_a_date: int | None = Field(
        description="date_reached: subscribers whose attribute is set but is no date "
        "(skipped); null for other triggers."
    )
    enrolled: int
    active: int
    finished: int
    exited: int
    steps: list[AutomationFunnelStepOut]


class EnrollmentOut(Schema):
    email: str
    status: str
    position: int = Field(description="The next step to run is the first at or after this.")
    next_run_at: datetime | None
    exit_reason: str
    enrolled_at: datetime
    ended_at: datetime | None
