from django.contrib.auth.forms import BaseUserCreationForm

from hostsite.users.models import User


class SignupForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ["email", "display_name"]

    def save(self, commit=True):
        user = super().save(commit=False)
        # The example trusts the address at sign-up; a real site sends a link first.
        user.email_verified = True
        if commit:
            user.save()
        return user
