//go:build !release

package demo

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/cloudsink/exotest"
	"github.com/certsync/certsync/cloudsink/graphtest"
	"github.com/certsync/certsync/ldapsrc/ldapmem"
)

// Pass runs one pass of the pipeline built from the demo's config file.
type Pass func(ctx context.Context, dryRun bool) (*agent.Plan, error)

// Options are what Run needs from its caller.
type Options struct {
	Out  io.Writer // where the demo writes; nil discards
	Keep bool      // keep the temporary directory and print its path
	// Build builds the pipeline from the configuration file the demo wrote.
	// Required.
	Build func(ctx context.Context, configPath string) (Pass, error)
	// Print shows a plan as the command's table output does. Required.
	Print func(w io.Writer, p *agent.Plan, dryRun bool) error
}

// Run runs the demo in a temporary directory: it starts the directory and
// the emulators, writes the configuration, builds the pipeline with
// o.Build, and runs a dry run, a sync and a second sync, printing each
// plan with o.Print. It fails when a pass fails (after printing the plan
// that came with the error), when a mailbox does not hold what it should
// after a step, when the dry run wrote anything, when the second sync
// still had users to change or wrote anything, when the sync wrote
// nothing to one of the targets, or when Exchange refused a Set-Mailbox.
func Run(ctx context.Context, o Options) error {
	if o.Build == nil || o.Print == nil {
		return errors.New("demo: Options.Build and Options.Print are required")
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	dir, err := os.MkdirTemp("", "certsync-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if o.Keep {
		fmt.Fprintf(out, "Demo files are kept in %s\n\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	w, err := buildWorld()
	if err != nil {
		return fmt.Errorf("demo: building the demo world: %w", err)
	}

	tlsCert, err := w.root.ServerTLS("127.0.0.1", "localhost")
	if err != nil {
		return fmt.Errorf("demo: directory TLS certificate: %w", err)
	}
	dirSrv, err := ldapmem.Start(ctx, ldapmem.Options{
		TLS:    &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12},
		BindDN: bindDN, BindPassword: bindPassword, Entries: w.entries,
	})
	if err != nil {
		return fmt.Errorf("demo: directory: %w", err)
	}
	defer dirSrv.Close()
	graph, err := graphtest.Start(graphtest.Options{Users: w.cloudUsers, ClientSecret: rand.Text()})
	if err != nil {
		return fmt.Errorf("demo: Graph emulator: %w", err)
	}
	defer graph.Close()
	exo, err := exotest.Mount(graph, exotest.Options{Mailboxes: w.mailboxes})
	if err != nil {
		return fmt.Errorf("demo: Exchange emulator: %w", err)
	}

	cfgPath, err := writeConfig(dir, dirSrv.URL, w, graph, exo)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	pass, err := o.Build(ctx, cfgPath)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	writeIntro(out, w, dirSrv.URL, graph.URL())
	r := &run{out: out, print: o.Print, pass: pass, world: w, graph: graph, exo: exo}
	return r.steps(ctx)
}

// run is one demo once its directory, emulators and pipeline are up.
type run struct {
	out   io.Writer
	print func(w io.Writer, p *agent.Plan, dryRun bool) error
	pass  Pass
	world *world
	graph *graphtest.Server
	exo   *exotest.Server // mounted on graph
}

// writeIntro says what the demo runs against and which cases it shows.
func writeIntro(out io.Writer, w *world, ldapURL, cloudURL string) {
	fmt.Fprintf(out, "certsync demo: %d directory users at %s\n", w.people, ldapURL)
	fmt.Fprintf(out, "Two cloud targets, emulated at %s:\n", cloudURL)
	fmt.Fprintln(out, "  Microsoft Graph   graph.certificateUserIds: certificate sign-in bindings (SKI) on each Entra ID user")
	fmt.Fprintln(out, "  Exchange Online   exchange.UserCertificate, exchange.UserSMimeCertificate: the certificates Outlook")
	fmt.Fprintf(out, "                    finds in the address book, on %d mailboxes (at most %d per attribute)\n", len(w.mailboxes), exotest.MaxValues)
	fmt.Fprintln(out, "Exchange values are whole certificates, shown by subject, serial and sha256.")
	fmt.Fprintf(out, "Trusted issuing CAs: %s, %s. A foreign CA (%s) issued some certificates too.\n\n",
		w.root.Cert.Subject.CommonName, w.issuing.Cert.Subject.CommonName, w.foreign.Cert.Subject.CommonName)
	fmt.Fprintln(out, "The users and what each shows:")
	for _, c := range w.cases {
		fmt.Fprintln(out, "  "+c)
	}
	fmt.Fprintln(out)
}

// steps runs the dry run, the sync and the second sync, and checks the
// mailboxes and the writes of each.
func (r *run) steps(ctx context.Context) error {
	out, w, graph, exo := r.out, r.world, r.graph, r.exo
	steps := []struct {
		title  string
		dryRun bool
		// boxes is what every mailbox must hold once the step is done.
		boxes map[string]mailbox
	}{
		{"1. Dry run: what would change (nothing is written)", true, w.boxesBefore},
		{"2. Sync: apply the plan", false, w.boxesAfter},
		{"3. Second sync: nothing left to change", false, w.boxesAfter},
	}
	type counts struct{ graph, exchange int }
	var writes []counts
	for i, s := range steps {
		fmt.Fprintf(out, "=== %s ===\n\n", s.title)
		before := counts{graph.Writes(), setMailboxCalls(exo)}
		plan, passErr := r.pass(ctx, s.dryRun)
		if plan == nil {
			if passErr == nil {
				passErr = errors.New("the pass returned no plan")
			}
			return fmt.Errorf("demo: step %d: %w", i+1, passErr)
		}
		if err := r.print(out, plan, s.dryRun); err != nil {
			return fmt.Errorf("demo: step %d: printing the plan: %w", i+1, err)
		}
		if passErr != nil {
			return fmt.Errorf("demo: step %d: %w", i+1, passErr)
		}
		writes = append(writes, counts{graph.Writes() - before.graph, setMailboxCalls(exo) - before.exchange})
		fmt.Fprintf(out, "Graph write requests in this step: %d\n", writes[i].graph)
		fmt.Fprintf(out, "Exchange Set-Mailbox requests in this step: %d\n\n", writes[i].exchange)
		if i == 1 {
			writeMailboxes(out, exo, w.boxNotes)
		}
		if err := checkMailboxes(exo, s.boxes); err != nil {
			return fmt.Errorf("demo: step %d: the mailboxes do not hold what they should: %w", i+1, err)
		}
		if i == 2 && (plan.Stats.UsersChanged != 0 || writes[i] != (counts{})) {
			return fmt.Errorf("demo: the second sync still had %d users to change and made %d Graph writes and %d Set-Mailbox requests",
				plan.Stats.UsersChanged, writes[i].graph, writes[i].exchange)
		}
	}
	if writes[0] != (counts{}) {
		return fmt.Errorf("demo: the dry run wrote: %d Graph writes, %d Set-Mailbox requests", writes[0].graph, writes[0].exchange)
	}
	if writes[1].graph == 0 || writes[1].exchange == 0 {
		return fmt.Errorf("demo: the sync wrote too little: %d Graph writes, %d Set-Mailbox requests", writes[1].graph, writes[1].exchange)
	}
	if refused := refusedSetMailbox(exo); len(refused) > 0 {
		return fmt.Errorf("demo: Exchange refused Set-Mailbox for %s", strings.Join(refused, ", "))
	}
	fmt.Fprintln(out, "Demo finished: the dry run wrote nothing to either target, the sync published the valid certificates")
	fmt.Fprintln(out, "to Graph and to the mailboxes (each mailbox holds what it should), the second sync changed nothing.")
	return nil
}
