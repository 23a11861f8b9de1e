package cloudsink

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Endpoints are the service roots of one Microsoft cloud.
type Endpoints struct {
	Graph     string // Microsoft Graph root, e.g. https://graph.microsoft.com
	Authority string // Entra ID authority host, e.g. https://login.microsoftonline.com/
	// Exchange is Exchange Online's root, e.g. https://outlook.office365.com;
	// it is also the token resource of its admin API.
	Exchange string
}

// environmentNames lists the clouds certsync knows, in the order errors
// name them.
func environmentNames() []string { return []string{"global", "usgov", "usgovdod", "china"} }

// EnvironmentEndpoints returns the endpoints of a cloud by name: "global",
// "usgov" (GCC High, L4), "usgovdod" (DoD, L5) or "china" (21Vianet).
// Graph, Exchange and the authority differ together, so they are chosen
// together.
func EnvironmentEndpoints(name string) (Endpoints, error) {
	switch name {
	case "global":
		return Endpoints{Graph: "https://graph.microsoft.com", Authority: "https://login.microsoftonline.com/", Exchange: "https://outlook.office365.com"}, nil
	case "usgov":
		return Endpoints{Graph: "https://graph.microsoft.us", Authority: "https://login.microsoftonline.us/", Exchange: "https://outlook.office365.us"}, nil
	case "usgovdod":
		return Endpoints{Graph: "https://dod-graph.microsoft.us", Authority: "https://login.microsoftonline.us/", Exchange: "https://webmail.apps.mil"}, nil
	case "china":
		return Endpoints{Graph: "https://microsoftgraph.chinacloudapi.cn", Authority: "https://login.chinacloudapi.cn/", Exchange: "https://partner.outlook.cn"}, nil
	}
	return Endpoints{}, fmt.Errorf("cloudsink: unknown environment %q (valid: %s)", name, strings.Join(environmentNames(), ", "))
}

// environmentOrDefault resolves "" to "global".
func environmentOrDefault(name string) (string, Endpoints, error) {
	if name == "" {
		name = "global"
	}
	ep, err := EnvironmentEndpoints(name)
	return name, ep, err
}

// parseOverride checks an endpoint override: an https URL with a host and
// no path, query or credentials. what names the setting in errors.
func parseOverride(what, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("cloudsink: %s %q: %w", what, raw, err)
	}
	switch {
	case u.Scheme != "https":
		return nil, fmt.Errorf("cloudsink: %s %q: must be an https URL (Entra and Graph clients refuse plain http)", what, raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("cloudsink: %s %q: no host", what, raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("cloudsink: %s %q: only scheme, host and port are allowed", what, raw)
	case u.Path != "":
		return nil, fmt.Errorf("cloudsink: %s %q: give the base without a path (certsync adds /v1.0 itself)", what, raw)
	}
	return u, nil
}

// EndpointHost is where an endpoint override sends the app's tokens (and,
// for the authority host, its client secret or assertion), and why that
// host is allowed.
type EndpointHost struct {
	Host string
	// Listed: allowed only because cloud.dangerouslyAllowedHosts names it
	// (doctor warns about each such override).
	Listed bool
}

// CheckOverrideHost checks that the override raw of the environment's
// endpoints (graphEndpoint, authorityHost, exchange.endpoint) points at a
// host certsync may send credentials to: loopback (the emulators, a local
// proxy), one of the environment's own hosts, or a host allowed lists
// (cloud.dangerouslyAllowedHosts). Anything else would hand a token that
// can rewrite every user's sign-in bindings to whoever runs that host.
func CheckOverrideHost(environment, raw string, allowed []string) (EndpointHost, error) {
	u, err := parseOverride("endpoint", raw)
	if err != nil {
		return EndpointHost{}, err
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" {
		return EndpointHost{Host: host}, nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return EndpointHost{Host: host}, nil
	}
	if _, ep, err := environmentOrDefault(environment); err == nil {
		for _, own := range []string{ep.Graph, ep.Authority, ep.Exchange} {
			if o, err := url.Parse(own); err == nil && strings.EqualFold(o.Hostname(), host) {
				return EndpointHost{Host: host}, nil
			}
		}
	}
	for _, a := range allowed {
		if strings.EqualFold(strings.TrimSpace(a), host) {
			return EndpointHost{Host: host, Listed: true}, nil
		}
	}
	return EndpointHost{}, fmt.Errorf("%s is neither loopback nor a host of the %s cloud: certsync would send it the app's token (and, for the authority, its credential); list the host in cloud.dangerouslyAllowedHosts if that is really meant", host, environmentLabel(environment))
}

func environmentLabel(name string) string {
	if name == "" {
		return "global"
	}
	return name
}
