// Package bench measures certsync's passes over a large directory through
// the built binary: a real slapd holding N users with one certificate
// each, the Graph emulator, and the raw `ldapsearch` read of the same
// entries as the floor. It holds only a benchmark (go test -bench); see
// BenchmarkPasses for the command.
package bench
