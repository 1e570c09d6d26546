"""A null-modem cable between two ptys: what a USB serial adapter on the glasses' UART is
to the host. The firmware opens one end as its board's console tty (a real serial port to
pyserial), the host tools the other."""

import os
import pty
import select
import threading
import tty


class NullModem:
    def __init__(self, device_end, host_end):
        self.ends = []
        self._masters = []
        for link in (device_end, host_end):
            master, slave = pty.openpty()
            tty.setraw(slave)
            os.symlink(os.ttyname(slave), link)
            self._masters.append(master)
            self.ends.append(slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True, name="nullmodem")
        self._thread.start()

    def _pump(self):
        a, b = self._masters
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.2)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:          # the other side closed for a moment (a reopen)
                    continue
                os.write(b if fd == a else a, data)

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for fd in self._masters + self.ends:
            os.close(fd)
