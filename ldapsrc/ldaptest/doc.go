// Package ldaptest is the LDAP test harness of certsync: StartSlapd runs a
// real OpenLDAP server (Debian's slapd) in a temporary directory for tests
// and benchmarks; StartMemory serves an in-process directory over LDAPS for
// `certsync demo`, where no slapd is installed; Person and PersonLDIF build
// directory data. StartSamba (or LaunchSamba from TestMain) provisions a real
// Samba Active Directory domain controller in a network namespace of its
// own (Linux, root, Debian's samba packages) with LDAP, LDAPS and its KDC
// forwarded to loopback ports; SambaUser and AddUsers seed it.
//
// It serves tests, benchmarks and the demo only. The agent's own code paths
// (ldapsrc, agent) must never import it; it must never import certsync's
// packages other than mapping/pkitest.
package ldaptest
