//go:build !release

package demo

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/certsync/certsync/cloudsink/exotest"
)

// mailbox is what one mailbox holds: DER certificates per attribute.
type mailbox struct {
	userCert, smime [][]byte
}

// setMailboxCalls counts the Set-Mailbox requests Exchange received,
// refused ones included: a dry run must not even try.
func setMailboxCalls(exo *exotest.Server) int {
	n := 0
	for _, r := range exo.Requests() {
		if r.Cmdlet == "Set-Mailbox" {
			n++
		}
	}
	return n
}

func refusedSetMailbox(exo *exotest.Server) []string {
	var out []string
	for _, r := range exo.Requests() {
		if r.Cmdlet == "Set-Mailbox" && r.Status != 200 {
			out = append(out, fmt.Sprintf("%s (HTTP %d %s)", r.Identity, r.Status, r.ErrorType))
		}
	}
	return out
}

// checkMailboxes compares every mailbox in the emulator with want, keyed
// by lower-case user principal name.
func checkMailboxes(exo *exotest.Server, want map[string]mailbox) error {
	var errs []error
	boxes := exo.Mailboxes()
	if len(boxes) != len(want) {
		errs = append(errs, fmt.Errorf("%d mailboxes, want %d", len(boxes), len(want)))
	}
	for _, m := range boxes {
		w, ok := want[strings.ToLower(m.UserPrincipalName)]
		if !ok {
			errs = append(errs, fmt.Errorf("mailbox %s: not one the demo made", m.UserPrincipalName))
			continue
		}
		for _, a := range []struct {
			name      string
			got, want [][]byte
		}{{"UserCertificate", m.UserCertificate, w.userCert}, {"UserSMimeCertificate", m.UserSMimeCertificate, w.smime}} {
			if !sameDERSet(a.got, a.want) {
				errs = append(errs, fmt.Errorf("mailbox %s: %s holds %d values, not the %d the demo expects byte for byte", m.UserPrincipalName, a.name, len(a.got), len(a.want)))
			}
		}
	}
	return errors.Join(errs...)
}

func sameDERSet(a, b [][]byte) bool {
	key := func(vs [][]byte) []string {
		out := make([]string, 0, len(vs))
		for _, v := range vs {
			out = append(out, string(v))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// writeMailboxes shows what each mailbox holds, as Outlook would find it.
func writeMailboxes(out io.Writer, exo *exotest.Server, notes map[string]string) {
	fmt.Fprintln(out, "Exchange Online mailboxes after the sync (UserCertificate / UserSMimeCertificate values):")
	for _, m := range exo.Mailboxes() {
		line := fmt.Sprintf("  %-8s %2d / %d", m.Identity, len(m.UserCertificate), len(m.UserSMimeCertificate))
		if n := notes[strings.ToLower(m.UserPrincipalName)]; n != "" {
			line += "   " + n
		}
		fmt.Fprintln(out, line)
	}
	fmt.Fprintln(out)
}
