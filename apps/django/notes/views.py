import asyncio
import sys

from asgiref.sync import sync_to_async
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


async def stats(request):
    """An async view. Under WSGI Django runs it in an event loop (asgiref's
    async_to_sync), and the ORM, which is synchronous, runs through sync_to_async."""
    count, authors = await asyncio.gather(
        sync_to_async(Note.objects.count)(),
        sync_to_async(lambda: sorted(set(Note.objects.values_list("author", flat=True))))(),
    )
    squares = await asyncio.gather(*(asyncio.sleep(0, result=i * i) for i in range(5)))
    try:
        answer = await asyncio.wait_for(asyncio.sleep(0.01, result="in time"), timeout=5)
    except asyncio.TimeoutError:
        answer = "timed out"
    return JsonResponse({"count": count, "authors": authors, "squares": squares, "wait_for": answer,
                         "q": request.GET.get("q", "")})
