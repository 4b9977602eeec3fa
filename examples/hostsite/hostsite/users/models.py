from django.contrib.auth.models import AbstractBaseUser, PermissionsMixin, UserManager
from django.db import models


class MemberManager(UserManager):
    def create_user(self, email, password=None, **fields):
        return self._create_user_plain(email, password, **fields)

    def create_superuser(self, email, password=None, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self._create_user_plain(email, password, **fields)

    def _create_user_plain(self, email, password, **fields):
        user = self.model(email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user


class User(AbstractBaseUser, PermissionsMixin):
    """A club member, known by their email address (no username)."""

    email = models.EmailField(unique=True)
    display_name = models.CharField(max_length=100, blank=True)
    # A real site sets this when the member follows its verification link.
    email_verified = models.BooleanField(default=False)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(auto_now_add=True)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = MemberManager()

    def __str__(self):
        return self.email
