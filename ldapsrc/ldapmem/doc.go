// Package ldapmem is an in-process LDAP directory served over LDAPS on
// loopback: simple bind, search (base, one level, subtree; filters
// evaluated for real; attribute selection; size limit), the
// paged-results control (RFC 2696) and the rootDSE. It is what `certsync
// demo` reads where no slapd is installed, and what the ldapsrc tests use
// to stand in for servers without paging.
//
// It is written on go-asn1-ber, the encoder go-ldap itself uses, rather
// than on an LDAP server library: the demo is linked into the default
// certsync binary, and the server libraries available (gldap) link the
// testing package, testify and hclog. It must import nothing of certsync's.
package ldapmem
