"""The hypervisor seam: the only package that talks to libvirt (and runs qemu-img)."""
