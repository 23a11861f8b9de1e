// Package ldapsrc is certsync's only package that speaks LDAP. It reads users
// and their certificate values (userCertificate, userSMIMECertificate) from
// Active Directory or OpenLDAP over TLS (LDAPS or StartTLS, never plain),
// page by page, one page ahead, so memory stays bounded by about two pages,
// and finds single users by DN or by a mail / userPrincipalName /
// sAMAccountName / uid value.
//
// Read also reads only what changed since a watermark it returned before
// (Active Directory uSNChanged pinned to one DC's invocationId, DirSync,
// or modifyTimestamp elsewhere), and says why when it had to read
// everything. Binds are simple or Kerberos (GSSAPI with a keytab or a
// credential cache; SSPI on Windows). CRLs reads the CRLs ADCS publishes
// in the configuration partition, and Diagnose checks a configuration step
// by step for `certsync doctor`.
//
// A read that fails or is cut short always returns an error: callers must
// never take a partial read as "these users have no certificates".
//
// ldapsrc may import mapping only among certsync's packages. It must never
// import cloudsink, state, agent, cmd or any HTTP package, and never its own
// test harness ldapsrc/ldaptest.
package ldapsrc
