// Package graphtest is an HTTPS emulator of the slice of Microsoft Entra ID
// and Microsoft Graph that certsync uses: the OpenID configuration and
// token endpoints (client secret and certificate client assertions), user
// reads with $select/$filter/$top and paging, user updates of
// authorizationInfo.certificateUserIds, and JSON $batch. It is strict on
// purpose: what it does not support it refuses with Graph's error shape
// instead of ignoring, so a client that works against it does not lean on
// leniency the real service lacks. Fault knobs (429 with Retry-After, other
// statuses, latency) drive the retry paths. Other services (exotest's
// Exchange Online) mount on the same server and authority with Mount; each
// access token remembers its resource, and Graph refuses tokens issued for
// another service. Access tokens are JWT-shaped like Entra's v1.0 app-only
// tokens (aud, tid, appid, roles, wids, exp), HMAC-signed by the emulator,
// and recognized by lookup, so an edited or foreign token is refused. The
// roles (Options.Roles, a mount's Roles) and directory roles
// (Options.DirectoryRoles, SetDirectoryRoles) are configurable, and Graph
// answers 403 Authorization_RequestDenied to reads and writes they do not
// allow, so tests can build a tenant missing a permission.
//
// It serves tests and `certsync demo`, never the agent's own code paths. It
// imports mapping/pkitest for its TLS certificates and must never import
// cloudsink itself, ldapsrc, state or agent.
package graphtest
