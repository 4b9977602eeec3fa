from django import forms

from signalpost.accounts.services import EMAIL_MAX_LENGTH
from signalpost.newsletters.models import Newsletter

EMAIL_ERRORS = {
    "required": "user_email is missing: enter your email address.",
    "invalid": "That is not a valid email address.",
    "max_length": f"An email address has at most {EMAIL_MAX_LENGTH} characters.",
}
NEWSLETTER_ERRORS = {
    "required": "newsletter is missing: choose a newsletter.",
    "invalid_choice": "There is no such newsletter.",
}


class NewsletterChoiceField(forms.ModelChoiceField):
    """A newsletter chosen by slug, as in ``?newsletter=weekly``."""

    def __init__(self, queryset, **kwargs):
        super().__init__(
            queryset=queryset,
            to_field_name="slug",
            empty_label=None,
            error_messages=NEWSLETTER_ERRORS,
            **kwargs,
        )

    def label_from_instance(self, obj):
        return obj.name


class SubscribeForm(forms.Form):
    user_email = forms.EmailField(
        label="Email address",
        max_length=EMAIL_MAX_LENGTH,
        error_messages=EMAIL_ERRORS,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    name = forms.CharField(
        label="Name (optional)",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    newsletter = NewsletterChoiceField(Newsletter.objects.filter(is_public=True))


class UnsubscribeForm(forms.Form):
    user_email = forms.EmailField(
        label="Email address",
        max_length=EMAIL_MAX_LENGTH,
        error_messages=EMAIL_ERRORS,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    # Private newsletters too: everyone may leave a list, listed or not.
    newsletter = NewsletterChoiceField(Newsletter.objects.all())
