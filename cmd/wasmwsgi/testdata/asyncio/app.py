"""asyncio in the sandbox: the event loop, host sockets, and executors without threads."""
import asyncio
import concurrent.futures
import threading
import time
from urllib.parse import parse_qs

import _wasmwsgi


def counting_polls(fn):
    """Runs fn() and returns its result with how many times the host's poll was called."""
    real = _wasmwsgi.net_poll
    calls = [0]

    def poll(*args):
        calls[0] += 1
        return real(*args)

    _wasmwsgi.net_poll = poll
    try:
        return fn(), calls[0]
    finally:
        _wasmwsgi.net_poll = real


async def numbers(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


async def basics():
    out = []
    out.append(await asyncio.gather(asyncio.sleep(0.02, "a"), asyncio.sleep(0.01, "b")))
    try:
        await asyncio.wait_for(asyncio.sleep(30), 0.05)
    except asyncio.TimeoutError:
        out.append("wait_for timed out")
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.call_soon_threadsafe(fut.set_result, "threadsafe")
    out.append(await fut)
    out.append([i async for i in numbers(3)])
    agen = numbers(10)
    out.append(await agen.__anext__())  # left open: asyncio.run closes it
    return out


def sleep_for_real():
    t = time.monotonic()
    asyncio.run(asyncio.sleep(0.3))
    return time.monotonic() - t


async def echo(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    events = []

    async def read():
        events.append("reading")
        line = await reader.readline()  # nothing has been sent yet: this waits
        events.append("got " + line.decode().strip())

    async def write():
        await asyncio.sleep(0.05)
        events.append("sending")
        writer.write(b"ping\n")
        await writer.drain()

    await asyncio.gather(read(), write())
    writer.write(b"a" * 100000)
    await writer.drain()
    data = await reader.readexactly(100000)
    writer.close()
    await writer.wait_closed()
    return events + [len(data), writer.get_extra_info("peername")[0]]


async def silent(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello\n")
    try:
        await asyncio.wait_for(reader.readline(), 0.1)
        return "answered"
    except asyncio.TimeoutError:
        return "read timed out"
    finally:
        writer.close()


def threads():
    out = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
        out.append(ex.submit(pow, 2, 10).result())
        out.append(list(ex.map(abs, [-1, -2])))
        f = ex.submit(lambda: 1 / 0)
        out.append(type(f.exception()).__name__)

    async def main():
        loop = asyncio.get_running_loop()
        a = await loop.run_in_executor(None, sum, [1, 2, 3])
        # In the executor no event loop runs, as in a worker thread.
        b = await asyncio.to_thread(lambda: asyncio._get_running_loop() is None)
        return a, b

    out.append(asyncio.run(main()))
    # Waits only another thread could end raise instead of hanging.
    import queue

    for wait in (concurrent.futures.Future().result, queue.Queue().get, threading.Event().wait):
        try:
            wait()
        except RuntimeError as e:
            out.append(str(e).split(":")[0])
    out.append(threading.Event().wait(0.01))
    try:
        threading.Thread(target=print).start()
        out.append("started")
    except RuntimeError as e:
        out.append("Thread.start: %s" % e)
    return out


def asgiref():
    from asgiref.sync import async_to_sync, sync_to_async

    out = []

    async def double(x):
        await asyncio.sleep(0.01)
        return 2 * x

    out.append(async_to_sync(double)(21))

    def add_one(x):
        return x + 1

    async def via_sync(x):
        return [await sync_to_async(add_one)(x), await sync_to_async(add_one, thread_sensitive=False)(x)]

    out.append(async_to_sync(via_sync)(1))
    out.append(asyncio.run(via_sync(5)))

    async def fails():
        await asyncio.sleep(0)
        raise KeyError("k")

    try:
        async_to_sync(fails)()
    except KeyError as e:
        out.append("KeyError %s" % e)

    def back_to_async():
        return async_to_sync(double)(3)

    async def nested():
        return await sync_to_async(back_to_async)()

    try:
        out.append(async_to_sync(nested)())
    except RuntimeError as e:
        out.append("nested: %s" % str(e).split(":")[0])
    return out


def pair():
    import socket

    a, b = socket.socketpair()
    a.sendall(b"xyz")
    out = [b.recv(2), b.recv(10)]
    try:
        b.recv(1)
    except OSError as e:
        out.append(errno_name(e))
    b.settimeout(0.01)
    try:
        b.recv(1)
    except TimeoutError:
        out.append("timed out")
    b.setblocking(False)
    try:
        b.recv(1)
    except BlockingIOError:
        out.append("would block")
    a.close()
    out.append(b.recv(1))
    try:
        b.send(b"x")
    except BrokenPipeError:
        out.append("broken pipe")
    b.close()
    return out


def signals():
    # The signal numbers exist, as on Linux, and handlers can be set; no signal is
    # ever delivered.
    import signal
    import socket

    valid = signal.valid_signals()
    out = [len(valid), signal.SIGTERM in valid, type(min(valid)).__name__]

    async def main():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, print)
        # Registered, and never run: nothing sends the sandbox a signal.
        registered = signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        return [registered, loop.remove_signal_handler(signal.SIGTERM), loop.remove_signal_handler(signal.SIGINT)]

    out.append(asyncio.run(main()))
    try:
        signal.siginterrupt(0, False)
    except ValueError as e:
        out.append(str(e))
    a, b = socket.socketpair()
    try:
        signal.set_wakeup_fd(a.fileno())
    except ValueError as e:
        out.append(str(e).replace(str(a.fileno()), "N"))
    a.setblocking(False)
    out.append([signal.set_wakeup_fd(a.fileno()), signal.set_wakeup_fd(-1) == a.fileno()])
    a.close(), b.close()
    return out


def errno_name(e):
    import errno

    return errno.errorcode[e.errno]


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ["PATH_INFO"]
    if path == "/basics":
        body = repr(asyncio.run(basics()))
        loop = asyncio.new_event_loop()
        body += " " + repr(loop.run_until_complete(asyncio.sleep(0, "new loop")))
        loop.close()
    elif path == "/select-loop":
        # An event loop on selectors.SelectSelector (select.select) instead of poll.
        import selectors

        loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
        body = repr(loop.run_until_complete(basics()))
        loop.close()
    elif path == "/sleep":
        slept, polls = counting_polls(sleep_for_real)
        body = "slept=%s polls=%d" % (slept >= 0.3, polls)
    elif path == "/echo":
        body = repr(asyncio.run(echo(int(q["port"]))))
    elif path == "/silent":
        body = asyncio.run(silent(int(q["port"])))
    elif path == "/pair":
        body = repr(pair())
    elif path == "/signals":
        body = repr(signals())
    elif path == "/threads":
        body = repr(threads())
    elif path == "/asgiref":
        body = repr(asgiref())
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such test\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
