"""Driver for callgrind and strace: what the loop spends per accepted connection.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/accept_cost.py MODE N [LOOP]   # from the --table runner

runs a server on 127.0.0.1 (loop.create_server, a Protocol that echoes and
closes on EOF) until N connections from a client process are over:
  plain   the client (Python, blocking sockets) opens one connection at a
          time: connect, send 1 byte, read it back, close
  burst   the same, but it connects 50 at a time before using them, so
          that one readiness event finds many connections in the backlog
  tls     ssl= on the server; the client is benchmarks/tls_client.c (built
          by benchmarks/tls.py) with one connection at a time: a full
          handshake, a 1-byte echo, close_notify both ways
The listening socket and the client are made by the parent process, which
hands the socket to the measured server (create_server(sock=...)), so
neither strace nor callgrind sees the client; the cost per connection is
(cost(2N) - cost(N)) / N, which cancels start-up (--table does it).
LOOP: asyncloop (default), asyncio, uvloop, rloop.

    python benchmarks/accept_cost.py --table [N [LOOPS [MODES]]]

prints instructions per connection (each run twice under callgrind);
--strace [N [LOOPS [MODES]]] prints the server's syscalls per connection
the same way (strace -f -c, 2N minus N).
"""

import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CLIENT = r"""
import socket, sys
port, n, burst = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
done = 0
while done < n:
    k = min(burst, n - done)
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(k)]
    for s in socks:
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        s.close()
    done += k
"""


def make_loop(name):
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name == "rloop":
        import rloop
        return rloop.new_event_loop()
    if name == "asyncio":
        return asyncio.new_event_loop()
    import asyncloop
    return asyncloop.new_event_loop()


def certs(certdir):
    sys.path.insert(0, HERE)
    import tls
    tls.make_certs(certdir)


def serve(loop, mode, n, fd, certdir):
    lost = [0]
    done = loop.create_future()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

        def connection_lost(self, exc):
            lost[0] += 1
            if lost[0] == n and not done.done():
                done.set_result(None)

    ctx = None
    if mode == "tls":
        import ssl
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem"))
    sock = socket.socket(fileno=fd)

    async def main():
        server = await loop.create_server(Echo, sock=sock, ssl=ctx, backlog=128)
        await done
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def run(mode, n, loop_name, fd, certdir):
    loop = make_loop(loop_name)
    try:
        serve(loop, mode, n, fd, certdir)
    finally:
        loop.close()


def client_cmd(mode, port, n, certdir):
    if mode == "tls":
        import tls
        client, why = tls.build_client()
        if client is None:
            raise SystemExit(f"no C TLS client: {why}")
        return [client, "127.0.0.1", str(port), "1", "0", f"x{n}", os.path.join(certdir, "ca.pem")]
    return [sys.executable, "-c", CLIENT, str(port), str(n), "50" if mode == "burst" else "1"]


def measure(tool, mode, n, loop, certdir):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    port = lsock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        cmd = [sys.executable, __file__, mode, str(n), loop, str(lsock.fileno()), certdir]
        if tool == "callgrind":
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd
        else:
            cmd = ["strace", "-f", "-c", "-o", out] + cmd
        server = subprocess.Popen(cmd, pass_fds=[lsock.fileno()], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        lsock.close()
        client = subprocess.run(client_cmd(mode, port, n, certdir), capture_output=True, text=True)
        sout, serr = server.communicate()
        if server.returncode != 0 or client.returncode != 0:
            raise SystemExit(f"{mode} {loop} failed:\n{serr[-2000:]}\n{client.stderr[-2000:]}")
        with open(out) as f:
            text = f.read()
    if tool == "callgrind":
        m = (re.search(r"^summary:\s+(\d+)", text, re.M)
             or re.search(r"^totals:\s+(\d+)", text, re.M))
        return int(m.group(1))
    calls = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
    return calls


def table(tool, n, loops, modes):
    with tempfile.TemporaryDirectory() as certdir:
        certs(certdir)
        for mode in modes:
            for loop in loops:
                base = measure(tool, mode, n, loop, certdir)
                double = measure(tool, mode, 2 * n, loop, certdir)
                if tool == "callgrind":
                    print(f"{mode:6} {loop:10} {(double - base) / n:10.0f} instructions/connection",
                          flush=True)
                else:
                    per = {k: (double.get(k, 0) - base.get(k, 0)) / n for k in double}
                    per = {k: v for k, v in per.items() if v >= 0.05}
                    total = sum(per.values())
                    detail = " ".join(f"{k}={v:.2f}"
                                      for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
                    print(f"{mode:6} {loop:10} {total:6.1f} syscalls/connection: {detail}",
                          flush=True)


def main(argv):
    if argv and argv[0] in ("--table", "--strace"):
        tool = "callgrind" if argv[0] == "--table" else "strace"
        n = int(argv[1]) if len(argv) > 1 else 200
        loops = argv[2].split(",") if len(argv) > 2 else ("asyncloop", "uvloop", "asyncio")
        modes = argv[3].split(",") if len(argv) > 3 else ("plain", "burst", "tls")
        table(tool, n, loops, modes)
        return
    run(argv[0], int(argv[1]), argv[2], int(argv[3]), argv[4])


if __name__ == "__main__":
    main(sys.argv[1:])
