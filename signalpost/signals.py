"""The public catalogue of Signalpost's signals.

Every signal Signalpost sends is declared here with its arguments. Hook your
own code to them with ``@receiver(signal, dispatch_uid=...)``; ``manage.py
signals`` lists them with every connected receiver.

Each signal is sent by the service that performs the action, inside that
service's transaction: a receiver that writes to the database commits or rolls
back with the action. Receivers with effects outside the database (email,
webhooks) must be durable (docs/signals.md).
"""

from signalpost.dispatch import DeclaredSignal

SUBSCRIPTION_ARGUMENTS = ("profile", "newsletter", "subscription", "user_email")

subscription_requested = DeclaredSignal(
    "subscription_requested",
    arguments=(*SUBSCRIPTION_ARGUMENTS, "source"),
    doc="A pending subscription was created or re-requested on a double opt-in newsletter: "
    "the address must confirm before it receives anything. Sent by "
    "newsletters.services.subscribe inside its transaction.",
)

user_subscribed = DeclaredSignal(
    "user_subscribed",
    arguments=(*SUBSCRIPTION_ARGUMENTS, "source"),
    doc="A subscription became active (single opt-in subscribe, or a confirmed double "
    "opt-in). Sent by newsletters.services.subscribe / subscription_confirm inside "
    "their transaction, once per activation.",
)

user_unsubscribed = DeclaredSignal(
    "user_unsubscribed",
    arguments=(*SUBSCRIPTION_ARGUMENTS, "reason"),
    doc="A pending or active subscription ended. Sent by newsletters.services.unsubscribe "
    "inside its transaction; not sent when the address was not subscribed.",
)

subscribers_imported = DeclaredSignal(
    "subscribers_imported",
    arguments=("newsletter", "subscription_ids", "source"),
    doc="A batch of subscriptions was created by an import (thousands at a time). Sent once "
    "per batch by newsletters.imports.subscribers_import inside the batch's transaction; "
    "receivers should work set-based.",
)

preferences_link_requested = DeclaredSignal(
    "preferences_link_requested",
    arguments=("profile", "user_email"),
    doc="Someone asked the site to email the preference-center link for an address that has "
    "a profile. Sent by newsletters.services.preferences_link_request.",
)

issue_sending_started = DeclaredSignal(
    "issue_sending_started",
    arguments=("issue", "newsletter", "recipient_count"),
    doc="Every delivery of an issue's send was created (by the workers' preparing tasks, "
    "after the click; its first batches may be out already): recipient_count is exact. Sent "
    "by publishing.services.issue_prepare_chunk in the last chunk's transaction.",
)

issue_sent = DeclaredSignal(
    "issue_sent",
    arguments=("issue", "newsletter", "sent_count", "failed_count"),
    doc="Every delivery of an issue reached a final state.",
)

issue_paused = DeclaredSignal(
    "issue_paused",
    arguments=("issue", "newsletter", "sent_count", "remaining_count"),
    doc="A send was paused: no worker starts another of its messages (within a second). "
    "Sent by publishing.services.issue_pause inside its transaction, once per pause.",
)

issue_resumed = DeclaredSignal(
    "issue_resumed",
    arguments=("issue", "newsletter", "remaining_count"),
    doc="A paused send was resumed where it stopped. Sent by publishing.services.issue_resume "
    "inside its transaction, once per resume of a paused send.",
)

issue_cancelled = DeclaredSignal(
    "issue_cancelled",
    arguments=("issue", "newsletter", "sent_count", "cancelled_count"),
    doc="A send (running or paused) was cancelled: its unsent deliveries are cancelled, "
    "never sent. Sent by publishing.services.issue_cancel inside its transaction, once.",
)

delivery_failed = DeclaredSignal(
    "delivery_failed",
    arguments=("delivery", "issue", "profile", "user_email", "reason"),
    doc="A delivery failed permanently (rejected recipient, or retries exhausted).",
)

bounce_received = DeclaredSignal(
    "bounce_received",
    arguments=("profile", "subscription", "user_email", "bounce_type", "description"),
    doc="The email provider reported a bounce for an address.",
)

complaint_received = DeclaredSignal(
    "complaint_received",
    arguments=("profile", "subscription", "user_email", "description"),
    doc="The email provider reported a spam complaint for an address.",
)

profile_erased = DeclaredSignal(
    "profile_erased",
    arguments=("profile_id", "user_email"),
    doc="A profile's personal data was erased; user_email is the address it had, for "
    "receivers that must forget it elsewhere. Sent by privacy.services.profile_erase inside "
    "its transaction. A durable receiver's task row keeps the address after it ran: forget "
    "in the transaction where you can.",
)

address_suppressed = DeclaredSignal(
    "address_suppressed",
    arguments=("emails", "newsletter", "reason", "source"),
    doc="Addresses went on the suppression list: never mailed again about newsletter (None: "
    "about any newsletter) until the person confirms a new double opt-in. emails lists the "
    "addresses newly suppressed (one for a bounce or complaint, up to a batch for an "
    "import); reason is a Suppression.Reason, source import:<format>, bounce or complaint. "
    "Sent by newsletters.suppressions.suppressions_add inside its transaction, once per "
    "newsletter scope and reason.",
)

suppression_lifted = DeclaredSignal(
    "suppression_lifted",
    arguments=("user_email", "newsletter", "subscription"),
    doc="A suppressed address confirmed a new double opt-in to newsletter: its suppression "
    "for that newsletter and any for every newsletter are gone. Sent by "
    "newsletters.suppressions.suppression_lift inside subscription_confirm's transaction.",
)

profile_tagged = DeclaredSignal(
    "profile_tagged",
    arguments=("tag", "profile_ids", "source"),
    doc="A tag (its name) was put on profiles that did not have it: profile_ids lists them "
    "(one for the API, staff and the preference center; up to a batch for an import). "
    "source is api, admin, import or service. Sent by accounts.services.profile_tags_set "
    "and newsletters.imports.batch_write inside their transaction, once per tag.",
)

profile_untagged = DeclaredSignal(
    "profile_untagged",
    arguments=("tag", "profile_ids", "source"),
    doc="A tag (its name) was taken off profiles that had it. Sent by "
    "accounts.services.profile_tags_set inside its transaction, once per tag.",
)

profile_attributes_changed = DeclaredSignal(
    "profile_attributes_changed",
    arguments=("profile", "user_email", "changed", "source"),
    doc="A profile's attributes changed: changed maps each key that changed to [old, new] "
    "(None where there was none, or is none now). source is api, admin, preferences or "
    "service. Sent by accounts.services.profile_attributes_set / profile_attributes_update "
    "inside their transaction; not sent when nothing changed. An import gives new profiles "
    "their attributes without it (subscribers_imported says who they are).",
)

link_clicked = DeclaredSignal(
    "link_clicked",
    arguments=("delivery", "issue", "profile", "url", "is_human"),
    doc="A tracked link of an issue was followed (docs/engagement.md). is_human is False for "
    "a scanner's or a burst's click; profile is None on a newsletter that keeps counts only "
    "or once the person left it. Sent by engagement.services.hits_record in the batch's "
    "transaction, a few seconds after the click (the judging waits for bursts).",
)

email_opened = DeclaredSignal(
    "email_opened",
    arguments=("delivery", "issue", "profile", "is_human"),
    doc="An issue's open pixel was fetched (opt-in per newsletter; unreliable, "
    "docs/engagement.md). is_human is False for image proxies (Apple, Google) and scanners. "
    "Sent by engagement.services.hits_record in the batch's transaction.",
)

automation_step_webhook = DeclaredSignal(
    "automation_step_webhook",
    arguments=("automation_id", "automation_name", "newsletter", "profile", "user_email", "event"),
    doc="An automation's webhook step ran for a person (docs/automations.md): event is the "
    "name the step gives it. Sent by automations.engine in the step's transaction, at most "
    "once per person and step; webhooks delivers it as automation.step.",
)

enrollment_exited = DeclaredSignal(
    "enrollment_exited",
    arguments=("enrollment", "automation", "profile", "reason"),
    doc="A person left an automation before its end (docs/automations.md): reason is "
    "unsubscribed, bounced, complained or 'tagged <exit tag>'. Sent once per enrollment that "
    "exits, by automations.services.enrollments_exit / enrollments_exit_tagged (in the "
    "transaction of the unsubscribe, bounce, complaint or tag) and by automations.engine "
    "when a claimed person is found gone (in the exit's own transaction).",
)

automation_step_sent = DeclaredSignal(
    "automation_step_sent",
    arguments=("automation", "step", "profile_ids"),
    doc="An automation's email or welcome step was sent to people: profile_ids lists those "
    "whose message the mail server took in this batch (up to SEND_BATCH_SIZE; a batch form, "
    "as profile_tagged). Sent by automations.engine once per step and batch: for an email "
    "step in the transaction that records the step for them, for a welcome step in its own "
    "transaction right after; not sent for a message refused, for good or for now.",
)

CATALOGUE = (
    subscription_requested,
    user_subscribed,
    user_unsubscribed,
    subscribers_imported,
    preferences_link_requested,
    issue_sending_started,
    issue_sent,
    issue_paused,
    issue_resumed,
    issue_cancelled,
    delivery_failed,
    bounce_received,
    complaint_received,
    profile_erased,
    address_suppressed,
    suppression_lifted,
    profile_tagged,
    profile_untagged,
    profile_attributes_changed,
    link_clicked,
    email_opened,
    automation_step_webhook,
    enrollment_exited,
    automation_step_sent,
)
