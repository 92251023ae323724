from django import forms

from .models import Note


class NoteForm(forms.ModelForm):
    class Meta:
        model = Note
        fields = ["author", "text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 3})}
