from django.urls import path

from signalpost.newsletters import views

urlpatterns = [
    path("", views.home, name="home"),
    path("subscribe/", views.subscribe_page, name="subscribe"),
    path("unsubscribe/", views.unsubscribe_page, name="unsubscribe"),
]
