// Package config loads certsync's agent.yaml: Load → defaults → Validate,
// and Validate always runs. Errors name the key ("sources[1].url:
// required").
//
// Each section belongs to the package that uses it: ldapsrc.Settings
// (source, sources[i]), cloudsink.Settings (the cloud connection), the
// agent's targets (cloud.match, cloud.certificateUserIds, cloud.exchange);
// each supplies its defaults, validation and allowed values, and config
// composes them. Config also reads what the sections name (secret files,
// CA bundles) into the options the packages take. Secrets are read only
// from files or the environment, never from the YAML itself, and are held
// in Secret, whose String() is redacted.
//
// config may import agent, ldapsrc, cloudsink and mapping; nothing but the
// command imports config.
package config
