package state

import (
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releaseMapped tells the kernel that the process no longer needs the
// pages of the memory map that reads have touched: they leave its
// resident set and stay in the page cache, mapped again on the next read.
// bbolt maps the file shared and read-only and writes with pwrite, so
// nothing is lost, and other transactions reading meanwhile fault the
// same bytes back in. tx must be open: it keeps the map where it is, and
// its size is mapped (only the file's pages, never the memory after the
// map).
func releaseMapped(db *bolt.DB, tx *bolt.Tx) {
	data, size := db.Info().Data, tx.Size()
	if data == 0 || size <= 0 {
		return
	}
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, data, uintptr(size), unix.MADV_DONTNEED)
}
