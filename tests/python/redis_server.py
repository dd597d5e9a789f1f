"""A real redis-server on loopback for the tests and benchmarks that need one, and the few lines of
RESP (Redis's protocol) they speak to it: no client library is needed for a handful of commands."""
import shutil
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server on loopback, without persistence (or, given a `directory`, with an
    append-only file synced at every write there, so that a restart on the same `port` keeps
    everything); stopped by stop()."""

    def __init__(self, password=None, port=None, directory=None):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is installed by scripts/setup.sh (Debian package redis-server)")
        self.port = port or free_port()
        self.password = password
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(directory), "--appendonly", "yes", "--appendfsync", "always"] if directory else \
            ["--appendonly", "no"]
        if password:
            args += ["--requirepass", password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                self.command("PING")
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def url(self):
        return f"redis://{':' + self.password + '@' if self.password else ''}127.0.0.1:{self.port}/0"

    def command(self, *args):
        """One command in RESP, the reply decoded (bulk strings as bytes)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            out = b""
            if self.password:
                out += encode_command("AUTH", self.password)
            out += encode_command(*args)
            s.sendall(out)
            reader = s.makefile("rb")
            if self.password:
                read_reply(reader)
            return read_reply(reader)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def encode_command(*args):
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def read_reply(reader):
    line = reader.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.read(n + 2)
        return data[:-2]
    if kind == b"*":
        return [read_reply(reader) for _ in range(int(rest))]
    raise OSError(f"unexpected reply {line!r}")


class Connection:
    """One connection kept open (authenticated): commands one at a time, pipelined, or replies read
    as they come (a subscription's messages)."""

    def __init__(self, port, password=None):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        if password:
            self.call("AUTH", password)

    def call(self, *args):
        self.sock.sendall(encode_command(*args))
        return read_reply(self.reader)

    def pipeline(self, commands):
        self.sock.sendall(b"".join(encode_command(*c) for c in commands))
        return [read_reply(self.reader) for _ in commands]

    def next_reply(self):
        return read_reply(self.reader)
