from django.urls import path

from signalpost.engagement import views

urlpatterns = [
    path("c/<str:token>", views.click, name="tracked_click"),
    path("o/<str:token>.gif", views.open_pixel, name="tracked_open"),
]
