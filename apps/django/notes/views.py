import sys

from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render

from .forms import NoteForm
from .models import Note


def index(request):
    """The list of notes and a form; a valid POST adds a note and redirects back here."""
    if request.method == "POST":
        form = NoteForm(request.POST)
        if form.is_valid():
            note = form.save()
            return redirect("notes:detail", pk=note.pk)
    else:
        form = NoteForm()
    return render(request, "notes/index.html", {
        "form": form,
        "notes": Note.objects.all()[:50],
        "count": Note.objects.count(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
    })


def detail(request, pk):
    return render(request, "notes/detail.html", {"note": get_object_or_404(Note, pk=pk)})


def notes_json(request):
    notes = Note.objects.all()
    return JsonResponse({
        "count": notes.count(),
        "notes": [{"id": n.pk, "author": n.author, "text": n.text, "created": n.created.isoformat()}
                  for n in notes[:1000]],
    })
