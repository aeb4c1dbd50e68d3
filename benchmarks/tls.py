"""TLS echo benchmark: asyncio, uvloop, rloop and asyncloop side by side.

    python benchmarks/tls.py               # 1 KiB and 100 KiB, 10 connections
    python benchmarks/tls.py --seconds 2 --reps 1

Also handshakes: connections opened with a full TLS handshake (the client
resumes no session), one 1-byte echo, closed; per server CPU-second.

A Protocol echo server over ssl= (certificates from trustme) runs in a fresh
process pinned to one core, per loop; the load generator is another process
pinned to the other core: benchmarks/tls_client.c (OpenSSL, plain epoll,
built here with -lssl -lcrypto), 10 TLS connections, each sending a message
and waiting for its echo.  If it cannot be built (no libssl-dev), a Python
client (asyncio on uvloop) takes its place and the output says so; it
costs more CPU than the servers it loads, so its figures are lower.  Reported: round trips per
server CPU-second (the server's utime+stime over the timed window), the
figure the ratios use, and per wall second.  asyncloop runs twice: with its
C TLS layer (src/ssl.c) and with asyncio's sslproto over its C transport
(ASYNCLOOP_SSLPROTO=1).  A loop that fails (rloop has no TLS) says so in
its row.

--floor adds two rows with no Python at all: benchmarks/tls_floor.c (built
here), a TLS echo server in C over OpenSSL and epoll, loaded, pinned and
measured the same way, with the same certificate and the TLS settings of
Python's default server context (the same protocol, TLS 1.3, and cipher,
TLS_AES_256_GCM_SHA384, are negotiated; it prints them):
  C OpenSSL, memory BIO   what ssl.SSLObject makes every Python loop do:
                          recv() -> BIO_write -> SSL_read until WANT_READ
                          -> SSL_write of the echo -> BIO_read -> send().
                          The most a MemoryBIO TLS layer can reach: the
                          cost of OpenSSL plus the kernel, with no loop.
  C OpenSSL, socket fd    OpenSSL on the socket (SSL_set_fd), which no
                          Python loop can use: what the memory BIOs' copies
                          cost on top.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from net import BUILD, CLIENT_CPU, ROOT, SERVER_CPU, cpu_seconds, fmt_rate, free_port, pinned  # noqa: E402

ROWS = ("asyncio", "uvloop", "rloop", "asyncloop", "asyncloop-sslproto")
FLOOR_ROWS = {"C OpenSSL, memory BIO": "mem", "C OpenSSL, socket fd": "fd"}
SIZES = (1024, 100 * 1024, 0)  # 0: the handshake row
CONNECTIONS = 10


def loop_factory(name):
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    if name == "rloop":
        import rloop
        return rloop.new_event_loop
    if name.startswith("asyncloop"):
        import asyncloop
        return asyncloop.new_event_loop
    import asyncio
    return asyncio.new_event_loop


def serve(name, port, certdir):
    import asyncio
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem"))

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    loop = loop_factory(name)()
    server = loop.run_until_complete(
        loop.create_server(Echo, "127.0.0.1", int(port), ssl=ctx, backlog=128))
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


def client(port, size, seconds, certdir):
    import asyncio
    import ssl

    import uvloop

    ctx = ssl.create_default_context(cafile=os.path.join(certdir, "ca.pem"))
    size = int(size)
    msg = b"x" * size
    count = 0

    async def handshakes(deadline):
        nonlocal count
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            reader, writer = await asyncio.open_connection("127.0.0.1", int(port), ssl=ctx)
            writer.write(b"x")
            await reader.readexactly(1)
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
            count += 1

    async def one(deadline):
        nonlocal count
        reader, writer = await asyncio.open_connection("127.0.0.1", int(port), ssl=ctx)
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            writer.write(msg)
            await reader.readexactly(size)
            count += 1
        writer.close()

    async def main():
        deadline = asyncio.get_running_loop().time() + float(seconds)
        fn = handshakes if size == 0 else one
        await asyncio.gather(*(fn(deadline) for _ in range(CONNECTIONS)))

    uvloop.run(main())
    print(count)


def build_client(name="tls_client"):
    """benchmarks/build/<name>, or None (and why) if it cannot be built."""
    src = os.path.join(HERE, name + ".c")
    out = os.path.join(BUILD, name)
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out, None
    os.makedirs(BUILD, exist_ok=True)
    try:
        r = subprocess.run(["gcc", "-O2", "-o", out, src, "-lssl", "-lcrypto"],
                           capture_output=True, text=True)
    except OSError as exc:
        return None, str(exc)
    if r.returncode != 0:
        err = r.stderr.strip().splitlines()
        return None, err[0] if err else "gcc failed"
    return out, None


def make_certs(certdir):
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(os.path.join(certdir, "key.pem"))
    cert.cert_chain_pems[0].write_to_path(os.path.join(certdir, "cert.pem"))
    ca.cert_pem.write_to_path(os.path.join(certdir, "ca.pem"))


def case(row, size, seconds, certdir, c_client, floor=None):
    port = str(free_port())
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if row == "asyncloop-sslproto":
        env["ASYNCLOOP_SSLPROTO"] = "1"
    else:
        env.pop("ASYNCLOOP_SSLPROTO", None)
    if row in FLOOR_ROWS:
        cmd = [floor, FLOOR_ROWS[row], port, os.path.join(certdir, "cert.pem"),
               os.path.join(certdir, "key.pem")]
    else:
        cmd = [sys.executable, __file__, "--serve", row, port, certdir]
    proc = subprocess.Popen(cmd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=pinned(SERVER_CPU), env=env)
    try:
        if proc.stdout.readline().strip() != "ready":
            err = proc.stderr.read().strip().splitlines()
            return None, err[-1] if err else "server failed"
        if c_client:
            cafile = os.path.join(certdir, "ca.pem")
            cmd = [c_client, "127.0.0.1", port, str(CONNECTIONS), str(size), str(seconds), cafile]
            warm = cmd[:5] + ["0.3", cafile]
        else:
            cmd = [sys.executable, __file__, "--client", port, str(size), str(seconds), certdir]
            warm = cmd[:5] + ["0.3", certdir]
        subprocess.run(warm, capture_output=True, preexec_fn=pinned(CLIENT_CPU), env=env)
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pinned(CLIENT_CPU),
                             env=env)
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        if out.returncode != 0 or proc.poll() is not None or not out.stdout.strip():
            err = (out.stderr or "").strip().splitlines()
            return None, err[-1] if err else "client failed"
        n = int(out.stdout)
        if n == 0:
            return None, "no round trip completed (no TLS?)"
        r = {"per_cpu": n / cpu if cpu > 0 else float("nan"), "rps": n / wall}
        if row in FLOOR_ROWS:
            proc.kill()
            r["negotiated"] = proc.stderr.readline().split()[:2]
        return r, None
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)),
                    help="comma-separated message sizes in bytes, 0 for handshakes")
    ap.add_argument("--python-client", action="store_true",
                    help="load with the Python client even if the C one builds")
    ap.add_argument("--floor", action="store_true",
                    help="also the C OpenSSL echo servers (tls_floor.c), no Python")
    args = ap.parse_args()
    sizes = tuple(int(x) for x in args.sizes.split(","))
    c_client, why = (None, "--python-client") if args.python_client else build_client()
    rows = ROWS
    floor = None
    if args.floor:
        floor, fwhy = build_client("tls_floor")
        if floor is None:
            print(f"--floor: tls_floor.c not built: {fwhy}")
        else:
            rows = ROWS + tuple(FLOOR_ROWS)
    results = {}
    with tempfile.TemporaryDirectory() as certdir:
        make_certs(certdir)
        for _ in range(args.reps):
            for size in sizes:
                for row in rows:
                    r, err = case(row, size, args.seconds, certdir, c_client, floor)
                    key = (row, size)
                    if r is None:
                        results.setdefault(key, err)
                    elif not isinstance(results.get(key), dict) or \
                            r["per_cpu"] > results[key]["per_cpu"]:
                        results[key] = r
    print(f"\nTLS echo, {CONNECTIONS} connections, Python {sys.version.split()[0]}: round trips "
          "per server CPU-second (per wall second)")
    print("(handshakes: connections opened, echoed 1 byte, closed)")
    if c_client:
        print("client: benchmarks/tls_client.c (OpenSSL)")
    else:
        print(f"client: Python, asyncio on uvloop (the C client is not used: {why})")
    head = f"{'loop':<22}" + "".join(
        f"{f'{s // 1024} KiB' if s else 'handshakes':>24}" for s in sizes)
    print(head)
    for row in rows:
        cells = []
        for size in sizes:
            r = results.get((row, size))
            if isinstance(r, dict):
                cells.append(f"{fmt_rate(r['per_cpu'])} ({fmt_rate(r['rps'])}/s)")
            else:
                cells.append(f"FAILED: {str(r)[:14]}")
        print(f"{row:<22}" + "".join(f"{c:>24}" for c in cells))
    print("\nratios (per server CPU-second)")
    for other in ("uvloop", "rloop", "asyncio", "asyncloop-sslproto"):
        cells = []
        for size in sizes:
            a, b = results.get(("asyncloop", size)), results.get((other, size))
            if isinstance(a, dict) and isinstance(b, dict):
                cells.append(f"{a['per_cpu'] / b['per_cpu']:.2f}x")
            else:
                cells.append(f"n/a ({other} failed)" if not isinstance(b, dict) else "n/a")
        print(f"{'asyncloop/' + other:<28}" + "".join(f"{c:>26}" for c in cells))
    for row in rows[len(ROWS):]:
        for a_row, b_row in ((row, "asyncio"), ("asyncloop", row)):
            cells = []
            for size in sizes:
                a, b = results.get((a_row, size)), results.get((b_row, size))
                ok = isinstance(a, dict) and isinstance(b, dict)
                cells.append(f"{a['per_cpu'] / b['per_cpu']:.2f}x" if ok else "n/a")
            name = f"{a_row}/{b_row}".replace("C OpenSSL, ", "C ")
            print(f"{name:<28}" + "".join(f"{c:>26}" for c in cells))
    negotiated = {tuple(r["negotiated"]) for r in results.values()
                  if isinstance(r, dict) and r.get("negotiated")}
    if negotiated:
        print("C servers negotiated: " + ", ".join(" ".join(n) for n in sorted(negotiated)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(*sys.argv[2:5])
    elif sys.argv[1:2] == ["--client"]:
        client(*sys.argv[2:6])
    else:
        main()
