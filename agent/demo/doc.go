//go:build !release

// Package demo is everything `certsync demo` does except the command line:
// it builds a demo world (a generated PKI, directory entries covering the
// interesting cases, Entra ID users, Exchange Online mailboxes), starts the
// in-process directory and the Graph and Exchange Online emulators, writes
// a configuration file pointing the agent at them, and runs three passes
// (dry run, sync, second sync), checking after each what every mailbox
// holds and how many writes reached each target.
//
// The pipeline itself is not built here: the caller (the command) builds
// it from the written configuration file through Options.Build, and shows
// each plan through Options.Print, so the demo runs exactly what the
// agent's commands run.
//
// demo is the one package outside tests that imports the test harnesses
// (cloudsink/graphtest, cloudsink/exotest, mapping/pkitest) and the
// in-memory directory ldapsrc/ldapmem. Every file carries the !release build tag, so the
// release binary links none of them; it must never import cmd/certsync,
// and nothing but the demo command may import it.
package demo
