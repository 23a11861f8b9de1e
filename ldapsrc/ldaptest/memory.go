package ldaptest

import (
	"context"

	"github.com/certsync/certsync/ldapsrc/ldapmem"
)

// The in-process directory lives in ldapmem, which links no test code
// (the demo is part of the default binary); these names keep the tests'
// spelling.
type (
	Entry         = ldapmem.Entry
	MemoryOptions = ldapmem.Options
	Memory        = ldapmem.Server
)

// StartMemory starts an ldapmem directory; see ldapmem.Start.
func StartMemory(ctx context.Context, opts MemoryOptions) (*Memory, error) {
	return ldapmem.Start(ctx, opts)
}
