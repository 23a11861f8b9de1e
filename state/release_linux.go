package state

import (
	"os"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releaseMapped tells the kernel that the process no longer needs the
// pages of db's memory map that reads have touched: they leave its
// resident set and stay in the page cache, mapped again on the next read.
// bbolt only reads through the map (it writes with pwrite), so nothing
// is lost; checking a large file then does not raise the agent's memory.
func releaseMapped(db *bolt.DB, path string) {
	info, err := os.Stat(path)
	if err != nil || db.Info().Data == 0 {
		return
	}
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, db.Info().Data, uintptr(info.Size()), unix.MADV_DONTNEED)
}
