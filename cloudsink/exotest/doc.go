// Package exotest is an HTTPS emulator of the slice of Exchange Online's
// admin API that certsync uses: POST /adminapi/beta/{tenant}/InvokeCommand
// running Get-Mailbox (one mailbox by -Identity, or a paged listing) and
// Set-Mailbox with -UserCertificate / -UserSMimeCertificate. It mounts on a
// graphtest server, so Graph, Exchange and the authority share one HTTPS
// address, one test CA and one token endpoint, as they share one
// credential in certsync; tokens issued for Graph are refused here and
// the other way round. Tokens must carry Exchange.ManageAsApp in their
// roles (Options.Roles configures what the app is granted).
//
// It is strict on purpose: unknown cmdlets and parameters, more than 15
// values, values that are not base64 of an X.509 certificate, writes to a
// mailbox synced from on-premises, missing anchor or tenant, and bodies it
// does not understand are refused with Exchange's error shape. Fault knobs
// (429 with Retry-After, other statuses, latency, dropped answers) drive the
// retry paths. The wire format follows what public clients of the endpoint
// send and receive; see cloudsink/exchange_notes.md for what is verified.
//
// It serves tests and `certsync demo`, never the agent's own code paths. It
// imports graphtest and must never import cloudsink itself, ldapsrc, state
// or agent.
package exotest
