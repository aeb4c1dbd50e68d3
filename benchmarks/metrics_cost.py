"""Driver for callgrind: what the loop metrics (src/metrics.c) cost per operation.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/metrics_cost.py MODE N [LOOP]

runs N operations of MODE on one loop; the instructions per operation are
(I(2N) - I(N)) / N, which cancels start-up (see --table, which does it).
Modes:
  chain   a callback that call_soon()s itself: one callback per iteration
  batch   call_soon() 1000 callbacks at a time, the loop drains them
  timers  a callback that call_later(0)s itself: a timer per iteration
  echo    1 KiB ping-pong over a socketpair, both ends protocols of the loop
  hook    chain with set_slow_callback_hook(1.0) on (each callback timed)
LOOP: asyncloop (default), asyncio, uvloop, rloop.

    python benchmarks/metrics_cost.py --table [N]

runs each mode under callgrind twice and prints instructions per operation.
"""

import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile


def make_loop(name):
    if name == "asyncio":
        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name == "rloop":
        import rloop
        return rloop.new_event_loop()
    import asyncloop
    return asyncloop.new_event_loop()


def chain(loop, n):
    left = [n]

    def step():
        left[0] -= 1
        if left[0]:
            loop.call_soon(step)
        else:
            loop.stop()

    loop.call_soon(step)
    loop.run_forever()


def batch(loop, n):
    ran = [0]

    def cb():
        ran[0] += 1

    async def main():
        for _ in range(n // 1000):
            for _ in range(1000):
                loop.call_soon(cb)
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert ran[0] == n // 1000 * 1000


def timers(loop, n):
    left = [n]

    def step():
        left[0] -= 1
        if left[0]:
            loop.call_later(0, step)
        else:
            loop.stop()

    loop.call_later(0, step)
    loop.run_forever()


def echo(loop, n):
    a, b = socket.socketpair()
    payload = b"x" * 1024
    done = loop.create_future()

    class Server(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr

        def data_received(self, data):
            self.tr.write(data)

    class Client(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr, self.left, self.got = tr, n, 0
            tr.write(payload)

        def data_received(self, data):
            self.got += len(data)
            if self.got >= len(payload):
                self.got -= len(payload)
                self.left -= 1
                if self.left:
                    self.tr.write(payload)
                elif not done.done():
                    done.set_result(None)

    async def main():
        st, _ = await loop.create_connection(Server, sock=a)
        ct, _ = await loop.create_connection(Client, sock=b)
        await done
        ct.close()
        st.close()
        await asyncio.sleep(0)

    loop.run_until_complete(main())


def hook(loop, n):
    loop.set_slow_callback_hook(1.0, lambda what, dt: None)
    chain(loop, n)


MODES = {"chain": chain, "batch": batch, "timers": timers, "echo": echo, "hook": hook}


def callgrind(mode, n, loop, script=__file__):
    """Instructions of `python script mode n loop` under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, script, mode, str(n), loop],
            check=True, capture_output=True, text=True,
        )
        with open(out) as f:
            text = f.read()
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    return int(m.group(1))


def table(n, loops=("asyncloop",), modes=tuple(MODES)):
    print(f"{'mode':8} {'loop':10} {'instr/op':>10}")
    for mode in modes:
        for loop in loops:
            if mode == "hook" and loop != "asyncloop":
                continue
            base = callgrind(mode, n, loop)
            double = callgrind(mode, 2 * n, loop)
            print(f"{mode:8} {loop:10} {(double - base) / n:10.1f}", flush=True)


def main(argv):
    if argv and argv[0] == "--table":
        n = int(argv[1]) if len(argv) > 1 else 20000
        loops = argv[2].split(",") if len(argv) > 2 else ("asyncloop",)
        table(n, loops)
        return
    mode, n = argv[0], int(argv[1])
    loop = make_loop(argv[2] if len(argv) > 2 else "asyncloop")
    try:
        MODES[mode](loop, n)
    finally:
        loop.close()


if __name__ == "__main__":
    main(sys.argv[1:])
