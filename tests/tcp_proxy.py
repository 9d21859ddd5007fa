"""A TCP proxy between one `juncture serve` node and PostgreSQL that a test can break in the
two ways a network breaks:

- `Cable.sever`: connections are dropped (both ends shut down, as a reset), and new ones are
  taken but go nowhere until `Cable.mend` (which drops those too: the node connects afresh).
- `Cable.silence`: a partition that drops packets silently. Nothing is forwarded either way
  and nothing is closed: every socket stays open, bytes sent are held (in the proxy or in the
  kernel's buffers) and a close is held too; new connections are taken and held. `Cable.heal`
  lets everything held through, in order, and forwarding resumes (or, with ``reset``, drops
  every connection held).

Healing resumes the held connections by default rather than dropping them because that is
what a real partition does when it ends: TCP retransmits what was unacknowledged, and a
connection that neither end gave up on carries on. A node must cope with both kinds:
connections it gave up on during the partition (it closed them; the close reaches the server
at the heal) and connections it kept (they work again). ``heal(reset=True)`` models the other
ending, where something on the path forgot the connections.

One limit, which the tests that use it say: the proxy's own kernel acknowledges every byte
the node sends and answers its TCP keepalives, so a node's TCP-level timers (keepalives,
``tcp_user_timeout``) never fire through it. What it models is a database that stopped
answering behind a peer that still acknowledges, as behind a load balancer or a connection
pooler; a node must bound that on its own.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["Cable"]

#: Seconds between checks of a held thread for the cable being closed.
_POLL = 0.05


class Cable:
    """A proxy on 127.0.0.1 (``port``, a free one) to ``127.0.0.1:target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.cut = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # -- forwarding -----------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        if not self._wait_flowing() or self.cut.is_set():
            return  # held open, answered never (until mended: then dropped)
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        with self._lock:
            self._open.append(server)
        for one, other in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(one, other), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Forward ``source`` to ``sink`` while the cable flows. While it is silent nothing is
        read, and what was read already (data or the end of the stream) is held."""
        with contextlib.suppress(OSError):
            while self._wait_flowing():
                chunk = source.recv(65536)
                if not self._wait_flowing() or not chunk:
                    break
                sink.sendall(chunk)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def _wait_flowing(self) -> bool:
        """Hold the calling thread while the cable is silent; False once it is closed."""
        while not self._flowing.wait(_POLL):
            if self._closed:
                return False
        return not self._closed

    # -- faults ---------------------------------------------------------------------------
    def sever(self) -> None:
        """Drop every connection (both ends see it go) and hold new ones open, unanswered."""
        self.cut.set()
        self._drop_all()

    def mend(self) -> None:
        """End a `sever`: the held connections are dropped too, new ones are forwarded."""
        self._drop_all()
        self.cut.clear()

    def silence(self) -> None:
        """Start a silent partition: nothing forwarded either way, nothing closed."""
        self._flowing.clear()

    def heal(self, *, reset: bool = False) -> None:
        """End a `silence`: what was held goes through, in order; forwarding resumes. With
        ``reset`` every held connection is dropped instead (as when a firewall or a NAT on the
        path forgot them): only new connections are forwarded."""
        if reset:
            self._drop_all()
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self._listener.close()
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            for end in self._open:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            self._open.clear()
