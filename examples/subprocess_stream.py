"""Run several commands at once and stream their output line by line.

asyncio.create_subprocess_exec starts each command with its stdout as a
pipe; a task per command reads the lines as the command writes them. The
lines are shown grouped per command, in the order the commands were
given, so that the output does not depend on which one runs first.
"""
import asyncio
import sys

COMMANDS = [
    ["echo", "hello from echo"],
    ["sh", "-c", "for i in 1 2 3; do echo line $i; done; exit 2"],
    [sys.executable, "-c", "import sys; print('python says hi'); sys.stdout.flush()"],
]


async def stream(argv, lines):
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    async for line in proc.stdout:  # each line as soon as the command writes it
        lines.append(line.decode().rstrip())
    return await proc.wait()


async def main():
    outputs = [[] for _ in COMMANDS]
    tasks = [stream(argv, out) for argv, out in zip(COMMANDS, outputs, strict=True)]
    codes = await asyncio.gather(*tasks)
    for argv, out, code in zip(COMMANDS, outputs, codes, strict=True):
        name = "python" if argv[0] == sys.executable else argv[0]
        for line in out:
            print(f"[{name}] {line}")
        print(f"[{name}] exited with {code}")


asyncio.run(main())
