"""Server instructions per HTTP request, under callgrind (deterministic).

    python benchmarks/http_cost.py [N [LOOPS [LIBS]]]

runs benchmarks/http_apps.py's server (the one net.py's http cases time,
aiohttp or uvicorn + httptools) under valgrind --tool=callgrind with
instrumentation off; a blocking client in this process (outside valgrind)
warms it up with 500 keep-alive GET requests over 10 connections, then
`callgrind_control -i on`, N requests (default 3000) over the same
connections (no accept is measured), and `callgrind_control -d`; the dump
divided by N is printed per (lib, loop), and the dump is kept
(/tmp/http_cost_<lib>_<loop>.out.1) for callgrind_annotate. While
valgrind waits in epoll_wait it reads no command, so each
callgrind_control is woken by a request on one of the connections (one or
two requests of noise). The batching of requests per iteration varies from
run to run: totals vary by about +-0.2%. LOOPS: comma-separated, default
asyncloop,uvloop; LIBS: default aiohttp,uvicorn. PYTHONHASHSEED is fixed;
a PYTHONPATH given comes before this tree (to measure another build).
"""

import os
import selectors
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HTTP_APPS = os.path.join(HERE, "http_apps.py")


def response_end(buf, i):
    """End of the response whose head ends at i, or -1 if incomplete."""
    head = buf[:i].lower()
    assert head.startswith(b"http/1.1 200"), head[:40]
    j = head.find(b"content-length:")
    if j >= 0:
        end = i + 4 + int(head[j + 15:].split(b"\r\n", 1)[0])
        return end if len(buf) >= end else -1
    assert b"transfer-encoding: chunked" in head
    k = buf.find(b"0\r\n\r\n", i + 4)  # the body has no such bytes
    return k + 5 if k >= 0 else -1


def connect(port, conns=10):
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]


def load(port, socks, n):
    """n keep-alive GETs over socks, one in flight per connection."""
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
    sel = selectors.DefaultSelector()
    bufs = {}
    sent = done = 0
    for s in socks[:n]:
        bufs[s] = b""
        sel.register(s, selectors.EVENT_READ)
        s.sendall(req)
        sent += 1
    while done < n:
        for key, _ in sel.select():
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                raise SystemExit("the server closed a connection")
            buf = bufs[s] + data
            while (i := buf.find(b"\r\n\r\n")) >= 0 and (end := response_end(buf, i)) >= 0:
                buf = buf[end:]
                done += 1
                if sent < n:
                    s.sendall(req)
                    sent += 1
            bufs[s] = buf
    sel.close()


def measure(loop, lib, n):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = f"/tmp/http_cost_{lib}_{loop}.out"
    for f in (out, out + ".1"):
        if os.path.exists(f):
            os.unlink(f)
    env = dict(os.environ, PYTHONHASHSEED="0",
               PYTHONPATH=os.pathsep.join(filter(None, (os.environ.get("PYTHONPATH"), ROOT))))
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         sys.executable, HTTP_APPS, loop, "server", lib, str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(proc.stderr.read())
        socks = connect(port)
        load(port, socks, 500)  # warm-up

        def control(*args):
            c = subprocess.Popen(["callgrind_control", *args, str(proc.pid)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while c.poll() is None:
                time.sleep(0.2)
                if c.poll() is None:  # wake valgrind up: one more request
                    load(port, socks[:1], 1)
            if c.returncode != 0:
                raise SystemExit(f"callgrind_control {args} failed")

        control("-i", "on")
        load(port, socks, n)
        control("-d")
        for s in socks:
            s.close()
    finally:
        proc.kill()
        proc.wait()
    with open(out + ".1") as f:
        total = next(int(line.split()[1]) for line in f if line.startswith("totals:"))
    return total / n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    loops = (sys.argv[2] if len(sys.argv) > 2 else "asyncloop,uvloop").split(",")
    libs = (sys.argv[3] if len(sys.argv) > 3 else "aiohttp,uvicorn").split(",")
    print(f"server instructions per request ({n} requests, 10 connections)")
    for lib in libs:
        for loop in loops:
            print(f"{lib:8s} {loop:10s} {measure(loop, lib, n):10,.0f}", flush=True)


if __name__ == "__main__":
    main()
