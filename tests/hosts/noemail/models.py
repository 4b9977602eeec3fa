from django.contrib.auth.models import AbstractBaseUser, BaseUserManager
from django.db import models


class Manager(BaseUserManager):
    def create_user(self, username, password=None):
        user = self.model(username=username)
        user.set_password(password)
        user.save(using=self._db)
        return user


class Member(AbstractBaseUser):
    """Known by a username alone: no email field at all."""

    username = models.CharField(max_length=50, unique=True)
    USERNAME_FIELD = "username"

    objects = Manager()
