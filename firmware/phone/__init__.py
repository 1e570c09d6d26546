"""The phone link: BlueZ over D-Bus (dbus.py, bluez.py), the Nordic UART GATT service (gatt.py),
Gadgetbridge's line protocol (gadgetbridge.py) and the companion Phone port (companion.py);
calls and music (calls.py, media.py). docs/phone.md describes the stack."""
