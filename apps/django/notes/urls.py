from django.urls import path

from . import views

app_name = "notes"
urlpatterns = [
    path("", views.index, name="index"),
    path("notes/<int:pk>/", views.detail, name="detail"),
    path("time/", views.time_zone, name="time"),
    path("notes.json", views.notes_json, name="json"),
    path("stats.json", views.stats, name="stats"),
]
