"""Build, verify and write the glasses' SD/eMMC image, rootless and without loop devices.

`flash.sh` is the entry point; it runs `python -m glasses_firmware.image`. Partitions are edited as
files: the FAT boot partition in place through mtools' `IMG@@OFFSET`, the ext4 root
extracted to a file, grown with resize2fs, edited with debugfs, and written back.
"""
