"""systemd's notify protocol: one datagram per message to $NOTIFY_SOCKET.

READY=1 once state is restored and the loops run; WATCHDOG=1 after each tick
cycle in which every symbol ticked (so a stuck loop stops the pings and
systemd restarts the service); STATUS= for `systemctl status`; STOPPING=1 on
shutdown. Without NOTIFY_SOCKET every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None) -> None:
        self._address: str | bytes | None = None
        if address:
            # A leading @ names a socket in the abstract namespace.
            self._address = b"\0" + address[1:].encode() if address.startswith("@") else address
        self._socket: socket.socket | None = None

    @classmethod
    def from_environment(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> None:
        if self._address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:  # systemd gone or socket full: never fatal for trading
            log.warning("could not notify systemd: %s", exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def watchdog(self, status: str) -> None:
        self.send("WATCHDOG=1", f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
