"""A minimal Django project serving django-newsletter's subscribe form, for bench/subscribe.py.

It runs in its own virtual environment (django-newsletter does not support Django 6.1),
never in the project's. Everything it needs comes from environment variables set by
bench/subscribe.py.
"""
