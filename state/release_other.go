//go:build !linux

package state

import bolt "go.etcd.io/bbolt"

// releaseMapped is a no-op here (release_linux.go).
func releaseMapped(*bolt.DB, *bolt.Tx) {}
