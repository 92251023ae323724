from django.db import models


class Note(models.Model):
    author = models.CharField(max_length=60, blank=True)
    text = models.CharField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return self.text
