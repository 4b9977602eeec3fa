from django import forms
from django.core.exceptions import ValidationError
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from signalpost.accounts.services import (
    ATTRIBUTE_VALUE_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    email_normalize,
    profile_attributes_check,
)
from signalpost.newsletters.models import Newsletter
from signalpost.newsletters.selectors import newsletter_by_slug


def _email_too_long() -> str:
    return gettext("An email address has at most %(count)d characters.") % {
        "count": EMAIL_MAX_LENGTH
    }


EMAIL_ERRORS = {
    "required": _("user_email is missing: enter your email address."),
    "invalid": _("That is not a valid email address."),
    "max_length": lazy(_email_too_long, str)(),
}
NEWSLETTER_ERRORS = {
    "required": _("newsletter is missing: choose a newsletter."),
    "invalid_choice": _("There is no such newsletter."),
}


class AddressField(forms.CharField):
    """An email address, cleaned to the one form its profile is stored under."""

    widget = forms.EmailInput(attrs={"autocomplete": "email"})

    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Email address"))
        super().__init__(max_length=EMAIL_MAX_LENGTH, error_messages=EMAIL_ERRORS, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return value
        try:
            return email_normalize(value)
        except forms.ValidationError as error:
            message = self.error_messages.get(error.code, error.messages[0])
            raise forms.ValidationError(message, code=error.code) from error


class NewsletterChoiceField(forms.ModelChoiceField):
    """A newsletter chosen by slug, as in ``?newsletter=weekly``: any, or only public ones."""

    def __init__(self, *, public_only, **kwargs):
        self.public_only = public_only
        kwargs.setdefault("label", _("Newsletter"))
        newsletters = Newsletter.objects.all()
        super().__init__(
            queryset=newsletters.filter(is_public=True) if public_only else newsletters,
            to_field_name="slug",
            empty_label=None,
            error_messages=NEWSLETTER_ERRORS,
            **kwargs,
        )

    def label_from_instance(self, obj):
        return obj.name

    def to_python(self, value):
        if value in self.empty_values:
            return None
        self.validate_no_null_characters(value)
        if isinstance(value, Newsletter):
            value = value.slug
        newsletter = newsletter_by_slug(str(value), public_only=self.public_only)
        if newsletter is None:
            raise forms.ValidationError(
                self.error_messages["invalid_choice"],
                code="invalid_choice",
                params={"value": value},
            )
        return newsletter


class HoneypotForm(forms.Form):
    """A form with a field people never see and bots fill in."""

    honeypot_field = "website"
    website = forms.CharField(
        label=_("Leave this field empty"),
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    def is_bot(self):
        return bool(self.cleaned_data.get(self.honeypot_field))


class EmbeddedSubscribeForm(HoneypotForm):
    """The form another website carries: one newsletter's, named by its URL."""

    user_email = AddressField()
    name = forms.CharField(
        label=_("Name (optional)"),
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    field_order = ["user_email", "name", "website"]


class SubscribeForm(EmbeddedSubscribeForm):
    newsletter = NewsletterChoiceField(public_only=True)
    field_order = ["user_email", "name", "newsletter", "website"]


class UnsubscribeForm(forms.Form):
    user_email = AddressField()
    # Private newsletters too: everyone may leave a list, listed or not.
    newsletter = NewsletterChoiceField(public_only=False)


class PreferencesLinkForm(HoneypotForm):
    user_email = AddressField()
    field_order = ["user_email", "website"]


class PreferencesForm(forms.Form):
    name = forms.CharField(
        label=_("Your name"),
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    newsletters = forms.ModelMultipleChoiceField(
        label=_("Newsletters you receive"),
        queryset=Newsletter.objects.none(),
        to_field_name="slug",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "invalid_choice": _("newsletters: there is no newsletter %(value)s."),
            "invalid_pk_value": _("newsletters: %(pk)s is not a newsletter."),
        },
    )

    def __init__(self, *args, choices, attributes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["newsletters"].queryset = choices
        # Only the declared attributes are fields: nothing else posted is ever read.
        self.editable_attributes = {f"attribute_{n}": a for n, a in enumerate(attributes)}
        for name, attribute in self.editable_attributes.items():
            self.fields[name] = _attribute_field(attribute)

    def attribute_fields(self):
        """The bound fields of the editable attributes, in their declared order."""
        return [self[name] for name in self.editable_attributes]

    def attribute_values(self):
        """``{key: value}`` of the editable attributes as submitted (``None``: cleared)."""
        return {
            attribute.key: self.cleaned_data.get(name) or None
            for name, attribute in self.editable_attributes.items()
        }

    @staticmethod
    def attribute_initial(attributes, profile_attributes):
        """The fields' initial values: the profile's current ones."""
        return {
            f"attribute_{n}": str(profile_attributes.get(a.key, ""))
            for n, a in enumerate(attributes)
        }


def _attribute_field(attribute):
    if attribute.choices:
        return forms.ChoiceField(
            label=attribute.label,
            choices=[("", _("(not set)")), *((c, c) for c in attribute.choices)],
            required=False,
        )
    return forms.CharField(
        label=attribute.label,
        max_length=ATTRIBUTE_VALUE_MAX_LENGTH,
        required=False,
        validators=[attribute_text_validate],
    )


def attribute_text_validate(value):
    """Text a person typed for an attribute: what the attributes' rules accept."""
    try:
        profile_attributes_check({"value": value})
    except ValidationError as error:
        raise ValidationError(error.message_dict["attributes"][0].removeprefix("value: ")) from None


class AccountNewsletterForm(forms.Form):
    """One toggle of the "Your newsletters" component: join or leave one newsletter."""

    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"

    # Private newsletters too: a signed-in subscriber may leave one, never join it here.
    newsletter = NewsletterChoiceField(public_only=False)
    action = forms.ChoiceField(
        choices=[(SUBSCRIBE, _("Subscribe")), (UNSUBSCRIBE, _("Unsubscribe"))],
        error_messages={
            "required": _("action is missing: subscribe or unsubscribe."),
            "invalid_choice": _("action must be subscribe or unsubscribe."),
        },
    )

    def clean(self):
        cleaned = super().clean()
        newsletter = cleaned.get("newsletter")
        if cleaned.get("action") == self.SUBSCRIBE and newsletter and not newsletter.is_public:
            self.add_error("newsletter", NEWSLETTER_ERRORS["invalid_choice"])
        return cleaned
