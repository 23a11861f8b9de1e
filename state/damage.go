package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged reports a state file that is there but cannot be trusted:
// empty, cut short or torn. certsync never starts over on such a file:
// starting over forgets which cloud values it published, and values it
// no longer knows as its own are never withdrawn (a lost smart card
// would keep signing in). Test for it with errors.Is.
var ErrDamaged = errors.New("state file is damaged")

// BackupSuffix names the copy of the state file taken after each
// successful commit (Store.Backup).
const BackupSuffix = ".bak"

// bbolt's file layout (bbolt v1.x): two meta pages at the start, each a
// 16-byte page header followed by the meta.
const (
	boltMagic       = 0xED0CDAED
	boltPageHeader  = 16
	boltMetaSize    = 64 // magic .. checksum
	boltMetaSummed  = 56 // the checksum covers the meta up to itself
	boltMinPageSize = 512
	boltMaxPageSize = 1 << 20
)

// boltMeta is what checkDamage reads of one meta page.
type boltMeta struct {
	pageSize uint32
	pgid     uint64 // pages in use: the file must hold at least this many
	txid     uint64
	root     uint64 // the root bucket's page
}

// readMeta decodes the meta page at off; ok is false when it is not a
// valid bbolt meta (wrong magic or checksum).
func readMeta(f io.ReaderAt, off int64) (boltMeta, bool) {
	buf := make([]byte, boltPageHeader+boltMetaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return boltMeta{}, false
	}
	m := buf[boltPageHeader:]
	if binary.LittleEndian.Uint32(m[0:4]) != boltMagic {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:boltMetaSummed])
	if h.Sum64() != binary.LittleEndian.Uint64(m[boltMetaSummed:boltMetaSize]) {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize: binary.LittleEndian.Uint32(m[8:12]),
		pgid:     binary.LittleEndian.Uint64(m[40:48]),
		txid:     binary.LittleEndian.Uint64(m[48:56]),
		root:     binary.LittleEndian.Uint64(m[16:24]),
	}, true
}

// checkDamage refuses a state file that exists but is empty, cut short or
// torn, before bbolt maps it: bbolt would initialise an empty file in
// place, and reading pages past the end of a short file panics or dies
// of SIGBUS. A missing file whose backup exists is refused too: the file
// was lost, not never written.
func checkDamage(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, berr := os.Stat(path + BackupSuffix); berr == nil {
			return fmt.Errorf("state: %s is missing but its backup %s exists: the state file was lost; restore it (cp %s %s) before running certsync again: %w",
				path, path+BackupSuffix, path+BackupSuffix, path, ErrDamaged)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("state: stat %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return damaged(path, "it is empty (0 bytes)")
	}
	m0, ok0 := readMeta(f, 0)
	var meta boltMeta
	switch {
	case ok0:
		meta = m0
		if m1, ok1 := readMeta(f, int64(m0.pageSize)); ok1 && m1.txid > m0.txid {
			meta = m1
		}
	default:
		// The first meta page may be the torn one: find the second by
		// the page sizes bbolt uses.
		found := false
		for ps := int64(boltMinPageSize); ps <= boltMaxPageSize && !found; ps *= 2 {
			if m1, ok1 := readMeta(f, ps); ok1 && int64(m1.pageSize) == ps {
				meta, found = m1, true
			}
		}
		if !found {
			return nil // no bbolt header at all: bbolt refuses it, naming the file
		}
	}
	if meta.pageSize < boltMinPageSize || meta.pageSize > boltMaxPageSize {
		return damaged(path, fmt.Sprintf("its header gives a page size of %d", meta.pageSize))
	}
	if need := int64(meta.pgid) * int64(meta.pageSize); size < need {
		return damaged(path, fmt.Sprintf("it holds %d bytes where its header says %d (%d pages of %d): it was cut short", size, need, meta.pgid, meta.pageSize))
	}
	w := treeWalk{f: f, pageSize: int64(meta.pageSize), pages: meta.pgid, seen: make([]uint64, (meta.pgid+63)/64)}
	if why := w.page(meta.root, 0); why != "" {
		return damaged(path, why)
	}
	return nil
}

// treeWalk follows the B+tree's page references (branch children, and
// the roots of nested buckets) from the file itself, before bbolt does:
// bbolt's cursor descends a branch page that points back up the tree
// for ever.
//
// It reads every page of the tree once, at every open: a bit per page
// says it was seen, and each level of the tree reads into one buffer of
// its own, so a large file costs no garbage (a buffer per page made 110
// MB of it at 100,000 users, and a peak in memory with it).
type treeWalk struct {
	f        io.ReaderAt
	pageSize int64
	pages    uint64   // pages in use
	seen     []uint64 // a bit per page
	hdr      [boltPageHeader]byte
	bufs     [][]byte // by depth
}

// buffer is depth's buffer, n bytes long.
func (w *treeWalk) buffer(depth int, n int64) []byte {
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, nil)
	}
	if int64(cap(w.bufs[depth])) < n {
		w.bufs[depth] = make([]byte, n)
	}
	return w.bufs[depth][:n]
}

// bbolt's page flags and the leaf element flag of a nested bucket.
const (
	boltBranchPage = 0x01
	boltLeafPage   = 0x02
	boltBucketLeaf = 0x01
	boltElement    = 16 // branch and leaf elements are both 16 bytes
	boltMaxDepth   = 64 // far above any real tree's height
)

// page checks the page id and what it references; it returns why the
// file is damaged, or "".
func (w *treeWalk) page(id uint64, depth int) string {
	switch {
	case id < 2 || id >= w.pages:
		return fmt.Sprintf("a page refers to page %d, outside the %d pages in use", id, w.pages)
	case w.seen[id/64]&(1<<(id%64)) != 0:
		return fmt.Sprintf("page %d is referred to twice: its pages form a cycle", id)
	case depth > boltMaxDepth:
		return fmt.Sprintf("its tree is over %d pages deep", boltMaxDepth)
	}
	w.seen[id/64] |= 1 << (id % 64)
	hdr := w.hdr[:]
	if _, err := w.f.ReadAt(hdr, int64(id)*w.pageSize); err != nil {
		return fmt.Sprintf("page %d cannot be read (%v)", id, err)
	}
	flags := binary.LittleEndian.Uint16(hdr[8:10])
	count := int64(binary.LittleEndian.Uint16(hdr[10:12]))
	overflow := uint64(binary.LittleEndian.Uint32(hdr[12:16]))
	if id+overflow >= w.pages {
		return fmt.Sprintf("page %d runs past the %d pages in use", id, w.pages)
	}
	buf := w.buffer(depth, int64(overflow+1)*w.pageSize)
	if _, err := w.f.ReadAt(buf, int64(id)*w.pageSize); err != nil {
		return fmt.Sprintf("page %d cannot be read (%v)", id, err)
	}
	if boltPageHeader+count*boltElement > int64(len(buf)) {
		return fmt.Sprintf("page %d claims %d elements, more than it holds", id, count)
	}
	for i := range count {
		e := buf[boltPageHeader+i*boltElement:]
		switch flags {
		case boltBranchPage:
			if why := w.page(binary.LittleEndian.Uint64(e[8:16]), depth+1); why != "" {
				return why
			}
		case boltLeafPage:
			if binary.LittleEndian.Uint32(e[0:4])&boltBucketLeaf == 0 {
				continue
			}
			pos, ksize := int64(binary.LittleEndian.Uint32(e[4:8])), int64(binary.LittleEndian.Uint32(e[8:12]))
			at := boltPageHeader + i*boltElement + pos + ksize
			if at+8 > int64(len(buf)) {
				return fmt.Sprintf("page %d has a bucket element outside it", id)
			}
			// An inline bucket (root 0) lives in the value itself.
			if root := binary.LittleEndian.Uint64(buf[at : at+8]); root != 0 {
				if why := w.page(root, depth+1); why != "" {
					return why
				}
			}
		default:
			return fmt.Sprintf("page %d is referred to as part of the tree but is not a branch or leaf page (flags 0x%x)", id, flags)
		}
	}
	return ""
}

func damaged(path, why string) error {
	return fmt.Errorf("state: %s is damaged: %s. certsync will not start over on it (it would forget which cloud values it published). Restore the copy of the last good pass (cp %s %s); only when no good copy is left, move both aside and run `certsync sync --reclaim` once: %w",
		path, why, path+BackupSuffix, path, ErrDamaged)
}

// OpenSnapshot opens a read-only copy of the state file as it is now:
// the file's lock is held only while it is copied (milliseconds), so a
// long reader (a dry run waiting on the cloud) never holds up the
// agent's passes. The copy lives in a private temporary file, removed by
// Close. A missing file is reported like a read-only Open's.
func OpenSnapshot(path string, opts Options) (*Store, error) {
	opts.ReadOnly = true
	s, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp("", "certsync-state-snapshot-*.db")
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("state: snapshot of %s: %w", path, err)
	}
	name := tmp.Name()
	err = s.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(tmp)
		return err
	})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return nil, fmt.Errorf("state: snapshot of %s: %w", path, err)
	}
	snap, err := Open(name, opts)
	if err != nil {
		_ = os.Remove(name)
		return nil, fmt.Errorf("state: snapshot of %s: %w", path, err)
	}
	snap.removeOnClose = true
	return snap, nil
}

// openBolt is bolt.Open, with a panic of bbolt over a page it cannot
// read (it asserts rather than returns errors), or a fault on the mapped
// file, turned into ErrDamaged.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, damaged(path, fmt.Sprintf("bbolt cannot read it (%v)", r))
		}
	}()
	return bolt.Open(path, 0o600, opts)
}

// checkPages reads every key and value of the file, on this goroutine
// with faults turned into panics: a page overwritten inside a file of the
// right size passes checkDamage, and bbolt would panic on it (it asserts
// rather than returns errors), or fault on an offset that points outside
// the file, in the middle of a pass. (bbolt's own tx.Check is no help
// here: it faults on the same offsets on a goroutine of its own, and
// spins for minutes on a page claiming millions of overflow pages.)
func checkPages(db *bolt.DB, path string) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, fmt.Sprintf("bbolt cannot read it (%v)", r))
		}
	}()
	// What the check touched leaves the process as it goes: the file is
	// read whole, the agent's memory must not grow with it.
	if err := db.View(func(tx *bolt.Tx) error {
		touched := 0
		release := func(n int) {
			if touched += n; touched >= releaseEvery {
				touched = 0
				releaseMapped(db, tx)
			}
		}
		defer releaseMapped(db, tx)
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return touchBucket(b, release) })
	}); err != nil {
		return fmt.Errorf("state: check %s: %w", path, err)
	}
	return nil
}

// releaseEvery is how many keys are read through the memory map between
// releases of the pages touched. A fault maps up to 64 KiB around the
// page asked for (the kernel's fault-around), so 32 keys on pages of
// their own map at most 2 MiB.
const releaseEvery = 32

// touchBucket reads every byte of every key and value under b (nothing
// reads the file otherwise: Count walks keys too, never bbolt's Stats);
// it calls tick with the number of keys read.
func touchBucket(b *bolt.Bucket, tick func(int)) error {
	h := crc32.NewIEEE()
	return b.ForEach(func(k, v []byte) error {
		tick(1)
		_, _ = h.Write(k)
		if v != nil {
			_, _ = h.Write(v)
			return nil
		}
		if nb := b.Bucket(k); nb != nil {
			return touchBucket(nb, tick)
		}
		return nil
	})
}
