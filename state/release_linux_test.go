package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// rssFileKiB is the file-backed part of this process's resident set.
func rssFileKiB(t *testing.T) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			return n
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

// TestOpenLeavesTheFileOutOfMemory: Open reads every page of the file
// (checkPages) but does not keep them resident, so the agent's memory does
// not grow with the state file.
func TestOpenLeavesTheFileOutOfMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, Options{})
	value := strings.Repeat("v", 700)
	for batch := range 4 {
		var recs []Record
		for i := range 5000 {
			recs = append(recs, Record{Anchor: fmt.Sprintf("%02d-%05d", batch, i), DN: value,
				Targets: map[string]TargetRecord{"graph.certificateUserIds": {CloudID: value, Values: []string{value}}}})
		}
		if err := s.Update(recs, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	before := rssFileKiB(t)
	s = openTest(t, path, Options{})
	defer s.Close()
	grew := rssFileKiB(t) - before
	if file := int(fi.Size() / 1024); grew > file/4 {
		t.Errorf("opening a %d KiB state file left %d KiB of it resident", file, grew)
	}
}
