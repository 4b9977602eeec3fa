from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from hostsite import views
from signalpost.api.api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("signup/", views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    path("staff/", admin.site.urls),
    # Signalpost: its pages under /news/, its API under /news/api/v1/.
    path("news/", include("signalpost.public_urls")),
    path("news/api/v1/", api.urls),
]
