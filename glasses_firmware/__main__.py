"""`python -m glasses_firmware` is the `glasses` command."""

from glasses_firmware.firmware.cli import main

raise SystemExit(main())
