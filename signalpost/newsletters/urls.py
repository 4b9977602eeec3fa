from django.urls import path

from signalpost.newsletters import views

urlpatterns = [
    path("", views.home, name="home"),
    path("subscribe/", views.subscribe_page, name="subscribe"),
    path("unsubscribe/", views.unsubscribe_page, name="unsubscribe"),
    path("account/newsletters/", views.account_newsletters_page, name="account_newsletters"),
    path("preferences/", views.preferences_request_page, name="preferences_request"),
    path("preferences/<str:token>/", views.preferences_page, name="preferences"),
    path("preferences/<str:token>/data.json", views.preferences_data_page, name="preferences_data"),
    path("embed/<str:slug>/", views.embed_subscribe, name="embed_subscribe"),
    path("n/<slug:slug>/confirm/<str:token>/", views.confirm_page, name="confirm"),
    path(
        "n/<slug:slug>/unsubscribe/<str:token>/",
        views.one_click_unsubscribe,
        name="one_click_unsubscribe",
    ),
]
