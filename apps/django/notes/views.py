import asyncio
import sys
import time
from datetime import datetime, timezone

from asgiref.sync import sync_to_async
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.timezone import get_current_timezone_name, localtime

from .forms import NoteForm
from .models import Note

# Fixed instants on each side of Europe/Paris's two changes of 2024: on 31 March at
# 01:00 UTC the clocks went from 02:00 CET to 03:00 CEST, on 27 October at 01:00 UTC from
# 03:00 CEST back to 02:00 CET, so that morning 02:30 came twice.
DST_INSTANTS = [
    datetime(2024, 3, 31, 0, 30, tzinfo=timezone.utc),
    datetime(2024, 3, 31, 1, 30, tzinfo=timezone.utc),
    datetime(2024, 10, 27, 0, 30, tzinfo=timezone.utc),
    datetime(2024, 10, 27, 1, 30, tzinfo=timezone.utc),
]


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
        "zone": get_current_timezone_name(),
    })


def detail(request, pk):
    return render(request, "notes/detail.html", {"note": get_object_or_404(Note, pk=pk)})


def time_zone(request):
    """The fixed instants in UTC and in the current time zone (settings.TIME_ZONE),
    through the template filters, and as naive local times: Django puts TIME_ZONE in
    TZ and calls time.tzset(), so the C library's local time is Paris's too."""
    local = [(datetime.fromtimestamp(t.timestamp()).isoformat(),
              time.strftime("%Y-%m-%d %H:%M:%S %Z %z", time.localtime(t.timestamp())))
             for t in DST_INSTANTS]
    return render(request, "notes/time.html", {"zone": get_current_timezone_name(), "instants": DST_INSTANTS,
                                               "local": local})


def notes_json(request):
    notes = Note.objects.all()
    return JsonResponse({
        "count": notes.count(),
        "notes": [{"id": n.pk, "author": n.author, "text": n.text, "created": localtime(n.created).isoformat()}
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
                         "q": request.GET.get("q", ""), "time_zone": get_current_timezone_name(),
                         "dst": [localtime(t).isoformat() for t in DST_INSTANTS]})
