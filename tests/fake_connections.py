"""A TCP front for the fake TF Serving (tests/fake_tf_serving.py): what a client sees of a server that goes down,
restarts, or hangs."""

import socket
import struct
import threading


class TcpFront:
    """A TCP front for one API port: resets the first ``refuse`` connections, holds every connection unanswered
    when ``silent``, and otherwise relays bytes both ways to the real port."""

    def __init__(self, backend_port: int, refuse=0, silent=False):
        self.backend_port, self.refuse, self.silent = backend_port, refuse, silent
        self.refused, self.held = 0, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            if self.refused < self.refuse:
                self.refused += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
                conn.close()
            elif self.silent:
                self.held.append(conn)
            else:
                up = socket.create_connection(("127.0.0.1", self.backend_port))
                for a, b in ((conn, up), (up, conn)):
                    threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def stop(self):
        self._stop.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


def _pump(src, dst):
    try:
        while data := src.recv(1 << 16):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
