"""Template images: recipe -> debootstrap tree -> qcow2 base + kernel + initrd + manifest in the store."""
