"""Every newsletter that exists gets its welcome email as an automation, as new ones do."""

from django.db import migrations


def welcome_automations_create(apps, schema_editor):
    Newsletter = apps.get_model("newsletters", "Newsletter")
    Automation = apps.get_model("automations", "Automation")
    Step = apps.get_model("automations", "Step")
    for newsletter in Newsletter.objects.exclude(automations__is_welcome=True):
        automation = Automation.objects.create(
            newsletter=newsletter,
            name="Welcome email",
            status="active",
            trigger="subscribed",
            trigger_sources=["api", "embed", "form"],
            is_welcome=True,
        )
        Step.objects.create(automation=automation, position=0, kind="welcome", config={})


class Migration(migrations.Migration):
    dependencies = [("automations", "0001_initial")]

    operations = [
        migrations.RunPython(welcome_automations_create, migrations.RunPython.noop),
    ]
