"""Profiles stored before addresses had one canonical form get it now.

Only addresses that can differ from their canonical form are read: those with a
non-ASCII character or a quoted local part. A profile whose canonical address
another profile already holds is left as it is and named in the output, since
merging two people's subscriptions is a decision for staff.
"""

from django.db import migrations
from django.db.models.functions import Lower


def profiles_canonicalize(apps, schema_editor):
    from django.core.exceptions import ValidationError

    from signalpost.accounts.services import email_normalize

    Profile = apps.get_model("accounts", "Profile")
    profiles = Profile.objects.using(schema_editor.connection.alias)
    for profile_id, email in profiles.values_list("id", "email").iterator():
        if email.isascii() and not email.startswith('"'):
            continue
        try:
            canonical = email_normalize(email)
        except ValidationError:
            continue
        if canonical == email:
            continue
        if profiles.alias(email_lower=Lower("email")).filter(email_lower=canonical).exists():
            print(f"\n  profile {profile_id} ({email!r}): {canonical!r} has a profile; left as it is")
            continue
        profiles.filter(id=profile_id).update(email=canonical)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_profile_soft_bounce_count")]

    operations = [migrations.RunPython(profiles_canonicalize, migrations.RunPython.noop)]
